//! Lexing: the text is cut into literal text and actions; actions into tokens.

use std::fmt;

use serde_json::{Number, Value};

use super::error::{Pos, TemplateError, TemplateErrorKind, err};
use crate::cli::format::gofmt::{go_print, go_quote};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    /// `.` (empty path) or `.A.B`.
    Field(Vec<String>),
    /// `$` (empty name, the data given to render) or `$x`, with an optional `.A.B`.
    Var(String, Vec<String>),
    Ident(String),
    Lit(Value),
    Pipe,
    LParen,
    RParen,
    Declare,
    Comma,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Field(path) => write!(f, "{}", path_text("", path)),
            Token::Var(name, path) => write!(f, "{}", path_text(&format!("${name}"), path)),
            Token::Ident(name) => write!(f, "{name}"),
            Token::Lit(v) => write!(f, "{}", literal_text(v)),
            Token::Pipe => write!(f, "|"),
            Token::LParen => write!(f, "("),
            Token::RParen => write!(f, ")"),
            Token::Declare => write!(f, ":="),
            Token::Comma => write!(f, ","),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Spanned {
    pub(super) tok: Token,
    pub(super) at: Pos,
}

pub(super) enum Piece {
    Text(String),
    Action { toks: Vec<Spanned>, at: Pos },
}

/// Go trims these around `{{- ` and ` -}}`.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub(super) fn lex(src: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut from = 0;
    let mut trim_next = false;
    loop {
        let rest = &src[from..];
        let open = rest.find("{{").map(|k| from + k);
        let mut text = &src[from..open.unwrap_or(src.len())];
        if trim_next {
            text = text.trim_start_matches(is_space);
        }
        let Some(open) = open else {
            if !text.is_empty() {
                pieces.push(Piece::Text(text.to_owned()));
            }
            return Ok(pieces);
        };
        let mut i = open + 2;
        // `{{-3}}` is the number -3; only `{{- ` (with the space) trims.
        let after = &src[i..];
        if after.starts_with('-') && after[1..].starts_with(is_space) {
            text = text.trim_end_matches(is_space);
            i += 1;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.to_owned()));
        }
        let action = lex_action(src, open, i)?;
        if let Some(toks) = action.toks {
            pieces.push(Piece::Action {
                toks,
                at: Pos::at(src, open),
            });
        }
        from = action.end;
        trim_next = action.trim_after;
    }
}

struct LexedAction {
    /// None for a comment.
    toks: Option<Vec<Spanned>>,
    /// Byte offset just past the closing `}}`.
    end: usize,
    trim_after: bool,
}

fn skip_space(src: &str, i: usize) -> usize {
    i + (src[i..].len() - src[i..].trim_start_matches(is_space).len())
}

/// Finds the closing delimiter at `i` (after optional space): `}}`, or ` -}}` which also
/// trims the text after it.
fn close_at(src: &str, i: usize) -> Option<(usize, bool)> {
    let j = skip_space(src, i);
    let rest = &src[j..];
    if rest.starts_with("}}") {
        Some((j + 2, false))
    } else if j > i && rest.starts_with("-}}") {
        Some((j + 3, true))
    } else {
        None
    }
}

fn lex_action(src: &str, open: usize, start: usize) -> Result<LexedAction, TemplateError> {
    let open_at = Pos::at(src, open);
    let mut i = skip_space(src, start);
    if src[i..].starts_with("/*") {
        let Some(k) = src[i + 2..].find("*/") else {
            return err(open_at, TemplateErrorKind::UnclosedComment);
        };
        let Some((end, trim_after)) = close_at(src, i + 2 + k + 2) else {
            return err(open_at, TemplateErrorKind::CommentNotAlone);
        };
        return Ok(LexedAction {
            toks: None,
            end,
            trim_after,
        });
    }
    let mut toks = Vec::new();
    loop {
        if let Some((end, trim_after)) = close_at(src, i) {
            return Ok(LexedAction {
                toks: Some(toks),
                end,
                trim_after,
            });
        }
        i = skip_space(src, i);
        let rest = &src[i..];
        let Some(c) = rest.chars().next() else {
            return err(open_at, TemplateErrorKind::UnclosedAction);
        };
        let at = Pos::at(src, i);
        let next = rest[c.len_utf8()..].chars().next();
        let (tok, len) = match c {
            '|' => (Token::Pipe, 1),
            '(' => (Token::LParen, 1),
            ')' => (Token::RParen, 1),
            ',' => (Token::Comma, 1),
            ':' if rest.starts_with(":=") => (Token::Declare, 2),
            '"' => {
                let (s, len) = lex_quoted(rest, at)?;
                (Token::Lit(Value::String(s)), len)
            }
            '`' => match rest[1..].find('`') {
                Some(k) => (Token::Lit(Value::String(rest[1..1 + k].to_owned())), k + 2),
                None => return err(at, TemplateErrorKind::UnterminatedString),
            },
            '.' if next.is_some_and(|n| n.is_ascii_digit()) => lex_number(rest, at)?,
            '.' => {
                let (path, len) = lex_path(rest);
                (Token::Field(path), len.max(1))
            }
            '$' => {
                let name_len = rest[1..].len() - rest[1..].trim_start_matches(is_ident_char).len();
                let (path, len) = lex_path(&rest[1 + name_len..]);
                (
                    Token::Var(rest[1..1 + name_len].to_owned(), path),
                    1 + name_len + len,
                )
            }
            '0'..='9' => lex_number(rest, at)?,
            '-' | '+' if next.is_some_and(|n| n.is_ascii_digit() || n == '.') => {
                lex_number(rest, at)?
            }
            c if c.is_alphabetic() || c == '_' => {
                let len = rest.len() - rest.trim_start_matches(is_ident_char).len();
                let word = &rest[..len];
                let tok = match word {
                    "true" => Token::Lit(Value::Bool(true)),
                    "false" => Token::Lit(Value::Bool(false)),
                    "nil" => Token::Lit(Value::Null),
                    _ => Token::Ident(word.to_owned()),
                };
                (tok, len)
            }
            c => return err(at, TemplateErrorKind::UnexpectedChar(c)),
        };
        toks.push(Spanned { tok, at });
        i += len;
    }
}

/// `.A.B` chains; returns the names and the bytes they take (0 when `s` is not one).
fn lex_path(s: &str) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut used = 0;
    while let Some(rest) = s[used..].strip_prefix('.') {
        let len = rest.len() - rest.trim_start_matches(is_ident_char).len();
        if len == 0 || rest.starts_with(|c: char| c.is_ascii_digit()) {
            break;
        }
        names.push(rest[..len].to_owned());
        used += 1 + len;
    }
    (names, used)
}

fn lex_number(s: &str, at: Pos) -> Result<(Token, usize), TemplateError> {
    let mut len = 0;
    let mut prev = ' ';
    for (k, c) in s.char_indices() {
        let sign_ok = k == 0 || matches!(prev, 'e' | 'E');
        if !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || (sign_ok && "+-".contains(c))) {
            break;
        }
        len = k + c.len_utf8();
        prev = c;
    }
    let text = &s[..len];
    let digits = text.replace('_', "");
    let (sign, unsigned) = match digits.strip_prefix('-') {
        Some(u) => (-1, u),
        None => (1, digits.strip_prefix('+').unwrap_or(&digits)),
    };
    let radix = [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ]
    .iter()
    .find_map(|(p, r)| unsigned.strip_prefix(p).map(|d| (d, *r)));
    let int = match radix {
        Some((d, r)) => i64::from_str_radix(d, r).ok(),
        None => unsigned.parse::<i64>().ok(),
    };
    let value = match int {
        Some(i) => Some(Value::from(sign * i)),
        None if radix.is_none() => digits
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number),
        None => None,
    };
    match value {
        Some(v) => Ok((Token::Lit(v), len)),
        None => err(at, TemplateErrorKind::BadNumber(text.to_owned())),
    }
}

/// A Go interpreted string literal at the start of `s`; returns its value and length.
fn lex_quoted(s: &str, at: Pos) -> Result<(String, usize), TemplateError> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((k, c)) = chars.next() {
        match c {
            '"' => return Ok((out, k + 1)),
            '\n' => break,
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                let simple = match e {
                    'n' => Some('\n'),
                    't' => Some('\t'),
                    'r' => Some('\r'),
                    'a' => Some('\x07'),
                    'b' => Some('\x08'),
                    'f' => Some('\x0c'),
                    'v' => Some('\x0b'),
                    '\\' | '"' | '\'' => Some(e),
                    _ => None,
                };
                if let Some(c) = simple {
                    out.push(c);
                    continue;
                }
                let (digits, radix) = match e {
                    'x' => (2, 16),
                    'u' => (4, 16),
                    'U' => (8, 16),
                    '0'..='7' => (2, 8),
                    _ => return err(at, TemplateErrorKind::BadEscape(format!("\\{e}"))),
                };
                let mut code: String = if radix == 8 {
                    e.to_string()
                } else {
                    String::new()
                };
                code.extend(chars.by_ref().take(digits).map(|(_, d)| d));
                match u32::from_str_radix(&code, radix)
                    .ok()
                    .and_then(char::from_u32)
                {
                    Some(c) => out.push(c),
                    None => return err(at, TemplateErrorKind::BadEscape(format!("\\{e}{code}"))),
                }
            }
            c => out.push(c),
        }
    }
    err(at, TemplateErrorKind::UnterminatedString)
}

pub(super) fn path_text(base: &str, path: &[String]) -> String {
    if path.is_empty() && base.is_empty() {
        return ".".to_owned();
    }
    path.iter()
        .fold(base.to_owned(), |acc, name| format!("{acc}.{name}"))
}

pub(super) fn literal_text(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        other => go_print(&Some(other.clone())),
    }
}
