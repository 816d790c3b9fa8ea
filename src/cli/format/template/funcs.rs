//! The functions a template can call, with their names, arities and implementations.

use serde_json::Value;

use super::error::{Arity, TemplateErrorKind};
use super::exec::truthy;
use crate::cli::format::gofmt::{
    Datum, as_int, go_print, go_print_value, go_quote, go_sprint, go_sprintf, type_name,
};

/// The functions a template can call: Go's builtins that docker formats use, and docker's
/// own (`json`, `join`, `split`, `title`, `upper`, `lower`, `pad`, `truncate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Func {
    And,
    Eq,
    Index,
    Join,
    Json,
    Len,
    Lower,
    Ne,
    Not,
    Or,
    Pad,
    Print,
    Printf,
    Println,
    Split,
    Title,
    Truncate,
    Upper,
}

impl Func {
    const ALL: [Func; 18] = [
        Func::And,
        Func::Eq,
        Func::Index,
        Func::Join,
        Func::Json,
        Func::Len,
        Func::Lower,
        Func::Ne,
        Func::Not,
        Func::Or,
        Func::Pad,
        Func::Print,
        Func::Printf,
        Func::Println,
        Func::Split,
        Func::Title,
        Func::Truncate,
        Func::Upper,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Func::And => "and",
            Func::Eq => "eq",
            Func::Index => "index",
            Func::Join => "join",
            Func::Json => "json",
            Func::Len => "len",
            Func::Lower => "lower",
            Func::Ne => "ne",
            Func::Not => "not",
            Func::Or => "or",
            Func::Pad => "pad",
            Func::Print => "print",
            Func::Printf => "printf",
            Func::Println => "println",
            Func::Split => "split",
            Func::Title => "title",
            Func::Truncate => "truncate",
            Func::Upper => "upper",
        }
    }

    pub(super) fn lookup(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    pub(super) fn arity(self) -> Arity {
        let (min, max) = match self {
            Func::Json | Func::Len | Func::Lower | Func::Upper | Func::Title | Func::Not => {
                (1, Some(1))
            }
            Func::Join | Func::Split | Func::Truncate | Func::Ne => (2, Some(2)),
            Func::Pad => (3, Some(3)),
            Func::Index | Func::Printf | Func::And | Func::Or => (1, None),
            Func::Eq => (2, None),
            Func::Print | Func::Println => (0, None),
        };
        Arity { min, max }
    }
}

fn want_str(func: Func, v: &Datum) -> Result<&str, TemplateErrorKind> {
    match v {
        Some(Value::String(s)) => Ok(s),
        other => Err(TemplateErrorKind::WrongType {
            func: func.name(),
            want: "a string",
            got: type_name(other),
        }),
    }
}

fn want_int(func: Func, v: &Datum) -> Result<i64, TemplateErrorKind> {
    as_int(v).ok_or(TemplateErrorKind::WrongType {
        func: func.name(),
        want: "an integer",
        got: type_name(v),
    })
}

fn same(a: &Datum, b: &Datum) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (None | Some(Value::Null), None | Some(Value::Null)) => true,
        _ => a == b,
    }
}

pub(super) fn call(func: Func, args: &[Datum], first: &str) -> Result<Datum, TemplateErrorKind> {
    let arg = |i: usize| args.get(i).unwrap_or(&None);
    let string = |s: String| Ok(Some(Value::String(s)));
    match func {
        Func::Json => {
            // Go's encoder writes a missing value as null; serde_json, like docker's encoder
            // with SetEscapeHTML(false), leaves <, > and & alone.
            let v = arg(0).clone().unwrap_or(Value::Null);
            string(serde_json::to_string(&v).unwrap_or_else(|_| "null".to_owned()))
        }
        Func::Index => index(arg(0), &args[1.min(args.len())..], first),
        Func::Len => match arg(0) {
            Some(Value::String(s)) => Ok(Some(Value::from(s.len()))),
            Some(Value::Array(a)) => Ok(Some(Value::from(a.len()))),
            Some(Value::Object(m)) => Ok(Some(Value::from(m.len()))),
            other => Err(TemplateErrorKind::WrongType {
                func: "len",
                want: "a string, array or map",
                got: type_name(other),
            }),
        },
        Func::Upper => string(want_str(func, arg(0))?.to_uppercase()),
        Func::Lower => string(want_str(func, arg(0))?.to_lowercase()),
        Func::Title => string(title_case(want_str(func, arg(0))?)),
        Func::Join => {
            let sep = want_str(func, arg(1))?;
            match arg(0) {
                None | Some(Value::Null) => string(String::new()),
                Some(Value::Array(a)) => {
                    string(a.iter().map(go_print_value).collect::<Vec<_>>().join(sep))
                }
                other => Err(TemplateErrorKind::WrongType {
                    func: "join",
                    want: "an array",
                    got: type_name(other),
                }),
            }
        }
        Func::Split => {
            let (s, sep) = (want_str(func, arg(0))?, want_str(func, arg(1))?);
            // Go's strings.Split with an empty separator splits into characters.
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(sep).map(|p| Value::String(p.to_owned())).collect()
            };
            Ok(Some(Value::Array(parts)))
        }
        Func::Pad => {
            let s = want_str(func, arg(0))?;
            let (pre, post) = (want_int(func, arg(1))?, want_int(func, arg(2))?);
            if s.is_empty() {
                return string(String::new());
            }
            let spaces = |n: i64| " ".repeat(usize::try_from(n).unwrap_or(0));
            string(format!("{}{s}{}", spaces(pre), spaces(post)))
        }
        Func::Truncate => {
            let s = want_str(func, arg(0))?;
            let n = usize::try_from(want_int(func, arg(1))?).unwrap_or(0);
            string(
                s.char_indices()
                    .nth(n)
                    .map_or(s, |(i, _)| &s[..i])
                    .to_owned(),
            )
        }
        Func::Print => string(go_sprint(args)),
        Func::Println => {
            let mut s = args.iter().map(go_print).collect::<Vec<_>>().join(" ");
            s.push('\n');
            string(s)
        }
        Func::Printf => string(go_sprintf(
            want_str(func, arg(0))?,
            &args[1.min(args.len())..],
        )),
        Func::Not => Ok(Some(Value::Bool(!truthy(arg(0))))),
        // Go returns the first falsy (and) / truthy (or) argument, else the last.
        Func::And => Ok(args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .flatten()),
        Func::Or => Ok(args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .flatten()),
        Func::Eq => Ok(Some(Value::Bool(
            args[1.min(args.len())..].iter().any(|b| same(arg(0), b)),
        ))),
        Func::Ne => Ok(Some(Value::Bool(!same(arg(0), arg(1))))),
    }
}

fn index(item: &Datum, keys: &[Datum], first: &str) -> Result<Datum, TemplateErrorKind> {
    let mut cur = item.clone();
    for key in keys {
        let key_text = match key {
            Some(Value::String(s)) => go_quote(s),
            other => go_print(other),
        };
        let bad = || TemplateErrorKind::CantIndex {
            what: first.to_owned(),
            key: key_text.clone(),
        };
        cur = match (&cur, key) {
            (Some(Value::Array(a)), _) => {
                let i = as_int(key).ok_or_else(bad)?;
                let found = usize::try_from(i).ok().and_then(|u| a.get(u));
                Some(found.cloned().ok_or(TemplateErrorKind::IndexOutOfRange {
                    what: first.to_owned(),
                    index: i,
                })?)
            }
            (Some(Value::Object(m)), Some(Value::String(k))) => m.get(k).cloned(),
            (Some(Value::String(s)), _) => {
                // Go indexes a string by byte.
                let i = as_int(key).ok_or_else(bad)?;
                let byte = usize::try_from(i).ok().and_then(|u| s.as_bytes().get(u));
                Some(Value::from(*byte.ok_or(
                    TemplateErrorKind::IndexOutOfRange {
                        what: first.to_owned(),
                        index: i,
                    },
                )?))
            }
            _ => return Err(bad()),
        };
    }
    Ok(cur)
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_word_start = true;
    for c in s.chars() {
        if at_word_start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_word_start = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}
