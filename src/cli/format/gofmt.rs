//! Go's `fmt` as docker's output shows it: `%v` of a value decoded from JSON, `Sprint`,
//! the `Sprintf` verbs docker formats use, `strconv.Quote`, and `%g` for sizes.

use serde_json::{Number, Value};

/// A value during execution; `None` is a map key that is not there, which Go prints as
/// `<no value>` (an explicit JSON null prints as `<nil>`).
pub(super) type Datum = Option<Value>;

pub(super) fn type_name(v: &Datum) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Null) => "nil",
        Some(Value::Bool(_)) => "bool",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "map",
    }
}

pub(super) fn as_int(v: &Datum) -> Option<i64> {
    match v {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        _ => None,
    }
}

/// `%v` of a value decoded from JSON, as docker prints a template action's result.
pub(super) fn go_print(v: &Datum) -> String {
    match v {
        None => "<no value>".to_owned(),
        Some(v) => go_print_value(v),
    }
}

pub(super) fn go_print_value(v: &Value) -> String {
    let mut out = String::new();
    write_go(&mut out, v);
    out
}

fn write_go(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_number(n)),
        Value::String(s) => out.push_str(s),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(out, e);
            }
            out.push(']');
        }
        Value::Object(m) => {
            // Go's fmt prints map keys sorted.
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push_str("map[");
            for (i, (k, e)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go(out, e);
            }
            out.push(']');
        }
    }
}

/// Integral numbers print as integers (docker's fields are int64); other floats as Go's
/// `%v` (shortest `%g`, exponent from 1e+06 or below 1e-04).
fn go_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        return format!("{f:.0}");
    }
    let sci = format!("{f:e}");
    let exp: i32 = sci
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        go_exponent(&sci)
    }
}

/// Rust's `1.5e6` in Go's spelling `1.5e+06`.
fn go_exponent(sci: &str) -> String {
    match sci.split_once('e') {
        Some((mant, exp)) => {
            let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
            format!("{mant}e{sign}{digits:0>2}")
        }
        None => sci.to_owned(),
    }
}

/// Go's `%.<prec>g`: `prec` significant digits, trailing zeros dropped, exponent form when
/// the exponent is below -4 or at least `prec`.
pub(super) fn go_fmt_g(x: f64, prec: usize) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    let prec = prec.max(1);
    let sci = format!("{:.*e}", prec - 1, x);
    let exp: i64 = sci
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if exp < -4 || exp >= prec as i64 {
        let (mant, _) = sci.split_once('e').unwrap_or((&sci, ""));
        go_exponent(&format!("{}e{exp}", trim(mant)))
    } else {
        let decimals = usize::try_from(prec as i64 - 1 - exp).unwrap_or(0);
        trim(&format!("{x:.decimals$}"))
    }
}

/// Go's strconv.Quote.
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's fmt.Sprint: a space between two operands when neither is a string.
pub(super) fn go_sprint(args: &[Datum]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |d: &Datum| matches!(d, Some(Value::String(_)));
        if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
            out.push(' ');
        }
        out.push_str(&go_print(a));
    }
    out
}

/// Go's fmt.Sprintf for the verbs docker formats use: `%s %d %v %q %%`, with the `-` and
/// `0` flags, a width, and a precision for `%s`. Mistakes print as Go prints them
/// (`%!d(string=x)`, `%!s(MISSING)`), not as errors.
pub(super) fn go_sprintf(format: &str, args: &[Datum]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut left, mut zero) = (false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' | ' ' | '#' => {}
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
                chars.next();
            }
            n
        };
        let width = number(&mut chars);
        let precision = if chars.peek() == Some(&'.') {
            chars.next();
            Some(number(&mut chars).unwrap_or(0))
        } else {
            None
        };
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let bad = || format!("%!{verb}({}={})", type_name(arg), go_print(arg));
        let text = match (verb, arg) {
            ('d', _) => as_int(arg).map_or_else(bad, |i| i.to_string()),
            ('s' | 'v', _) => {
                let s = go_print(arg);
                match precision {
                    Some(p) => s.chars().take(p).collect(),
                    None => s,
                }
            }
            ('q', Some(Value::String(s))) => go_quote(s),
            ('q', Some(Value::Array(a))) => {
                let items: Vec<String> = a.iter().map(|e| go_quote(&go_print_value(e))).collect();
                format!("[{}]", items.join(" "))
            }
            ('q', _) => go_quote(&go_print(arg)),
            _ => bad(),
        };
        let pad = width.unwrap_or(0).saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.push_str(&" ".repeat(pad));
        } else if zero && verb == 'd' {
            let (sign, digits) = text
                .strip_prefix('-')
                .map_or(("", text.as_str()), |d| ("-", d));
            out.push_str(&format!("{sign}{}{digits}", "0".repeat(pad)));
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(&text);
        }
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", type_name(a), go_print(a)))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}
