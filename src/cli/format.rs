//! Output formatting for the docker-like `images`, `inspect` and `history` commands: the
//! subset of Go's `text/template` that `--format` takes, evaluated against JSON; the sizes
//! and ages docker prints; and the column alignment of its tables.
//!
//! The rules are docker's, so that scripts written against `docker ... --format` keep
//! working and tables read the same: sizes and ages follow github.com/docker/go-units, tables
//! follow the tabwriter settings of docker/cli's formatter, and values print as Go's `%v`
//! prints the `map[string]interface{}` a JSON document decodes to. `--format json` and
//! `--format table` are the callers' business; [`table_template`] and [`expand_escapes`]
//! give them docker's reading of those words.

use std::fmt;

use serde_json::{Number, Value};

// ---------------------------------------------------------------------------------------
// Errors

/// Where in the template text something went wrong (1-based, columns in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn at(src: &str, offset: usize) -> Pos {
        let before = src.get(..offset).unwrap_or(src);
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Pos { line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A template that does not parse, or an action that cannot be carried out on the data.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub at: Pos,
    pub kind: TemplateErrorKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TemplateErrorKind {
    UnclosedAction,
    UnclosedComment,
    CommentNotAlone,
    UnterminatedString,
    BadEscape(String),
    BadNumber(String),
    UnexpectedChar(char),
    Unexpected(String),
    Unsupported(String),
    UnknownFunction(String),
    ArgCount {
        func: &'static str,
        want: Arity,
        got: usize,
    },
    UnclosedBlock(&'static str),
    UndefinedVariable(String),
    MissingValue(&'static str),
    CantIndex {
        what: String,
        key: String,
    },
    IndexOutOfRange {
        what: String,
        index: i64,
    },
    NotIterable(String),
    NoField {
        field: String,
        ty: &'static str,
    },
    WrongType {
        func: &'static str,
        want: &'static str,
        got: &'static str,
    },
}

impl fmt::Display for TemplateErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TemplateErrorKind as K;
        match self {
            K::UnclosedAction => write!(f, "unclosed action (no matching }}}})"),
            K::UnclosedComment => write!(f, "unclosed comment"),
            K::CommentNotAlone => write!(f, "comment must be the whole action"),
            K::UnterminatedString => write!(f, "unterminated quoted string"),
            K::BadEscape(e) => write!(f, "invalid escape {e} in string"),
            K::BadNumber(n) => write!(f, "bad number syntax: {n}"),
            K::UnexpectedChar(c) => write!(f, "unexpected {} in action", go_quote(&c.to_string())),
            K::Unexpected(what) => write!(f, "unexpected {what}"),
            K::Unsupported(what) => write!(f, "{what} is not supported"),
            K::UnknownFunction(name) => write!(f, "unknown function {}", go_quote(name)),
            K::ArgCount { func, want, got } => {
                write!(f, "wrong number of args for {func}: want {want} got {got}")
            }
            K::UnclosedBlock(kw) => write!(f, "unclosed {kw} (no matching {{{{end}}}})"),
            K::UndefinedVariable(name) => write!(f, "undefined variable \"${name}\""),
            K::MissingValue(what) => write!(f, "missing value for {what}"),
            K::CantIndex { what, key } => write!(f, "can't index {what} with {key}"),
            K::IndexOutOfRange { what, index } => {
                write!(f, "index {index} out of range for {what}")
            }
            K::NotIterable(what) => write!(f, "range can't iterate over {what}"),
            K::NoField { field, ty } => write!(f, "can't evaluate field {field} in type {ty}"),
            K::WrongType { func, want, got } => write!(f, "{func} expects {want}, got {got}"),
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "template: {}: {}", self.at, self.kind)
    }
}

impl std::error::Error for TemplateError {}

/// How many arguments a function takes (the piped value counts as the last one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arity {
    pub min: usize,
    pub max: Option<usize>,
}

impl fmt::Display for Arity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(max) if max == self.min => write!(f, "{max}"),
            Some(max) => write!(f, "{} to {max}", self.min),
            None => write!(f, "at least {}", self.min),
        }
    }
}

fn err<T>(at: Pos, kind: TemplateErrorKind) -> Result<T, TemplateError> {
    Err(TemplateError { at, kind })
}

// ---------------------------------------------------------------------------------------
// Lexing: the text is cut into literal text and actions; actions into tokens.

#[derive(Debug, Clone, PartialEq)]
enum Token {
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
struct Spanned {
    tok: Token,
    at: Pos,
}

enum Piece {
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

fn lex(src: &str) -> Result<Vec<Piece>, TemplateError> {
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

// ---------------------------------------------------------------------------------------
// The parsed tree.

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Block),
    With(Block),
    Range(Block),
}

#[derive(Debug)]
struct Block {
    pipe: Pipeline,
    body: Vec<Node>,
    otherwise: Vec<Node>,
}

#[derive(Debug)]
struct Pipeline {
    /// `$x :=` or, in `range`, `$i, $e :=`.
    decl: Vec<String>,
    cmds: Vec<Command>,
}

#[derive(Debug)]
struct Command {
    call: Call,
    at: Pos,
}

#[derive(Debug)]
enum Call {
    Operand(Operand),
    Func { func: Func, args: Vec<Operand> },
}

#[derive(Debug)]
enum Operand {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Lit(Value),
    Sub(Box<Pipeline>),
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Field(path) => write!(f, "{}", path_text("", path)),
            Operand::Var(name, path) => write!(f, "{}", path_text(&format!("${name}"), path)),
            Operand::Lit(v) => write!(f, "{}", literal_text(v)),
            Operand::Sub(_) => write!(f, "(...)"),
        }
    }
}

fn path_text(base: &str, path: &[String]) -> String {
    if path.is_empty() && base.is_empty() {
        return ".".to_owned();
    }
    path.iter()
        .fold(base.to_owned(), |acc, name| format!("{acc}.{name}"))
}

fn literal_text(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        other => go_print(&Some(other.clone())),
    }
}

/// The functions a template can call: Go's builtins that docker formats use, and docker's
/// own (`json`, `join`, `split`, `title`, `upper`, `lower`, `pad`, `truncate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
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

    fn name(self) -> &'static str {
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

    fn lookup(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    fn arity(self) -> Arity {
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

// ---------------------------------------------------------------------------------------
// Parsing

enum Stop {
    Eof,
    End(Pos),
    Else(Vec<Spanned>, Pos),
}

struct Parser {
    pieces: std::vec::IntoIter<Piece>,
    /// Variables in scope, for "undefined variable" at parse time as Go reports it.
    vars: Vec<String>,
}

struct Cursor<'t> {
    toks: &'t [Spanned],
    i: usize,
    /// Where to point when the action ends too early.
    at: Pos,
}

impl<'t> Cursor<'t> {
    fn peek(&self) -> Option<&'t Spanned> {
        self.toks.get(self.i)
    }
}

impl Parser {
    fn parse_list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(piece) = self.pieces.next() {
            let (toks, at) = match piece {
                Piece::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Piece::Action { toks, at } => (toks, at),
            };
            let keyword = match toks.first() {
                Some(Spanned {
                    tok: Token::Ident(k),
                    ..
                }) => k.as_str(),
                _ => "",
            };
            match keyword {
                "if" | "with" | "range" => {
                    let kw = match keyword {
                        "if" => "if",
                        "with" => "with",
                        _ => "range",
                    };
                    nodes.push(self.parse_block(kw, &toks[1..], at)?);
                }
                "end" => match toks.get(1) {
                    Some(extra) => {
                        return err(
                            extra.at,
                            TemplateErrorKind::Unexpected(format!("{} in end", extra.tok)),
                        );
                    }
                    None => return Ok((nodes, Stop::End(at))),
                },
                "else" => return Ok((nodes, Stop::Else(toks[1..].to_vec(), at))),
                "define" | "template" | "block" | "break" | "continue" => {
                    return err(
                        at,
                        TemplateErrorKind::Unsupported(format!("{{{{{keyword}}}}}")),
                    );
                }
                _ => nodes.push(Node::Action(self.parse_pipeline(&toks, at, 1, "command")?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn parse_block(
        &mut self,
        kw: &'static str,
        toks: &[Spanned],
        at: Pos,
    ) -> Result<Node, TemplateError> {
        let scope = self.vars.len();
        let pipe = self.parse_pipeline(toks, at, if kw == "range" { 2 } else { 1 }, kw)?;
        let with_decl = self.vars.len();
        let (body, stop) = self.parse_list()?;
        self.vars.truncate(with_decl);
        let otherwise = match stop {
            Stop::Eof => return err(at, TemplateErrorKind::UnclosedBlock(kw)),
            Stop::End(_) => Vec::new(),
            Stop::Else(rest, else_at) => match rest.first().map(|s| &s.tok) {
                None => {
                    let (otherwise, stop) = self.parse_list()?;
                    match stop {
                        Stop::End(_) => otherwise,
                        Stop::Eof => return err(at, TemplateErrorKind::UnclosedBlock(kw)),
                        Stop::Else(_, p) => {
                            return err(p, TemplateErrorKind::Unexpected("second {{else}}".into()));
                        }
                    }
                }
                // `{{else if ...}}` / `{{else with ...}}` open a block that shares our {{end}}.
                Some(Token::Ident(k)) if k == kw && kw != "range" => {
                    vec![self.parse_block(kw, &rest[1..], else_at)?]
                }
                Some(other) => {
                    return err(
                        else_at,
                        TemplateErrorKind::Unexpected(format!("{other} after else")),
                    );
                }
            },
        };
        self.vars.truncate(scope);
        Ok(match kw {
            "if" => Node::If(Block {
                pipe,
                body,
                otherwise,
            }),
            "with" => Node::With(Block {
                pipe,
                body,
                otherwise,
            }),
            _ => Node::Range(Block {
                pipe,
                body,
                otherwise,
            }),
        })
    }

    /// An action's pipeline with its optional declaration of up to `max_decl` variables.
    fn parse_pipeline(
        &mut self,
        toks: &[Spanned],
        at: Pos,
        max_decl: usize,
        context: &'static str,
    ) -> Result<Pipeline, TemplateError> {
        let simple_var = |k: usize| match toks.get(k).map(|s| &s.tok) {
            Some(Token::Var(name, path)) if path.is_empty() && !name.is_empty() => {
                Some(name.clone())
            }
            _ => None,
        };
        let is = |k: usize, t: Token| toks.get(k).is_some_and(|s| s.tok == t);
        let (decl, skip) = match (simple_var(0), simple_var(2)) {
            (Some(a), _) if is(1, Token::Declare) => (vec![a], 2),
            (Some(a), Some(b)) if is(1, Token::Comma) && is(3, Token::Declare) => {
                if max_decl < 2 {
                    return err(
                        toks[1].at,
                        TemplateErrorKind::Unexpected("two variables outside range".into()),
                    );
                }
                (vec![a, b], 4)
            }
            _ => (Vec::new(), 0),
        };
        if toks.len() == skip {
            return err(at, TemplateErrorKind::MissingValue(context));
        }
        let mut cur = Cursor {
            toks: &toks[skip..],
            i: 0,
            at,
        };
        let cmds = self.parse_commands(&mut cur)?;
        if let Some(extra) = cur.peek() {
            return err(
                extra.at,
                TemplateErrorKind::Unexpected(extra.tok.to_string()),
            );
        }
        self.vars.extend(decl.iter().cloned());
        Ok(Pipeline { decl, cmds })
    }

    fn parse_commands(&mut self, cur: &mut Cursor<'_>) -> Result<Vec<Command>, TemplateError> {
        let mut cmds = Vec::new();
        loop {
            let cmd = self.parse_command(cur, cmds.len())?;
            cmds.push(cmd);
            match cur.peek() {
                Some(Spanned {
                    tok: Token::Pipe, ..
                }) => cur.i += 1,
                _ => return Ok(cmds),
            }
        }
    }

    fn parse_command(
        &mut self,
        cur: &mut Cursor<'_>,
        stage: usize,
    ) -> Result<Command, TemplateError> {
        let Some(first) = cur.peek() else {
            return err(cur.at, TemplateErrorKind::MissingValue("command"));
        };
        let at = first.at;
        if let Token::Ident(name) = &first.tok {
            let Some(func) = Func::lookup(name) else {
                return err(at, TemplateErrorKind::UnknownFunction(name.clone()));
            };
            cur.i += 1;
            let mut args = Vec::new();
            while let Some(op) = self.parse_operand(cur)? {
                args.push(op);
            }
            let got = args.len() + usize::from(stage > 0);
            let want = func.arity();
            if got < want.min || want.max.is_some_and(|max| got > max) {
                return err(
                    at,
                    TemplateErrorKind::ArgCount {
                        func: func.name(),
                        want,
                        got,
                    },
                );
            }
            return Ok(Command {
                call: Call::Func { func, args },
                at,
            });
        }
        let Some(op) = self.parse_operand(cur)? else {
            return err(at, TemplateErrorKind::Unexpected(first.tok.to_string()));
        };
        if stage > 0 {
            return err(
                at,
                TemplateErrorKind::Unexpected(format!(
                    "{op} after | (only a function can take a piped value)"
                )),
            );
        }
        if let Some(extra) = self.parse_operand(cur)? {
            return err(
                at,
                TemplateErrorKind::Unexpected(format!(
                    "argument {extra} to {op}, which is not a function"
                )),
            );
        }
        Ok(Command {
            call: Call::Operand(op),
            at,
        })
    }

    fn parse_operand(&mut self, cur: &mut Cursor<'_>) -> Result<Option<Operand>, TemplateError> {
        let Some(s) = cur.peek() else { return Ok(None) };
        let at = s.at;
        let op = match &s.tok {
            Token::Pipe | Token::RParen => return Ok(None),
            Token::Field(path) => Operand::Field(path.clone()),
            Token::Var(name, path) => {
                if !name.is_empty() && !self.vars.contains(name) {
                    return err(at, TemplateErrorKind::UndefinedVariable(name.clone()));
                }
                Operand::Var(name.clone(), path.clone())
            }
            Token::Lit(v) => Operand::Lit(v.clone()),
            Token::LParen => {
                cur.i += 1;
                let cmds = self.parse_commands(cur)?;
                match cur.peek() {
                    Some(Spanned {
                        tok: Token::RParen, ..
                    }) => {}
                    _ => {
                        return err(
                            at,
                            TemplateErrorKind::Unexpected("( without matching )".into()),
                        );
                    }
                }
                Operand::Sub(Box::new(Pipeline {
                    decl: Vec::new(),
                    cmds,
                }))
            }
            Token::Ident(name) => {
                let what = format!("function {name} as an argument (call it in parentheses)");
                return err(at, TemplateErrorKind::Unexpected(what));
            }
            Token::Declare | Token::Comma => {
                return err(at, TemplateErrorKind::Unexpected(s.tok.to_string()));
            }
        };
        cur.i += 1;
        Ok(Some(op))
    }
}

// ---------------------------------------------------------------------------------------
// Execution

/// A value during execution; `None` is a map key that is not there, which Go prints as
/// `<no value>` (an explicit JSON null prints as `<nil>`).
type Datum = Option<Value>;

/// A parsed template: parse once with [`Template::parse`], render for each item.
#[derive(Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut parser = Parser {
            pieces: lex(src)?.into_iter(),
            vars: Vec::new(),
        };
        let (nodes, stop) = parser.parse_list()?;
        match stop {
            Stop::Eof => Ok(Template { nodes }),
            Stop::End(at) => err(at, TemplateErrorKind::Unexpected("{{end}}".into())),
            Stop::Else(_, at) => err(at, TemplateErrorKind::Unexpected("{{else}}".into())),
        }
    }

    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut exec = Exec {
            root: data,
            vars: Vec::new(),
            out: String::new(),
        };
        exec.run(&self.nodes, data)?;
        Ok(exec.out)
    }
}

struct Exec<'d> {
    root: &'d Value,
    vars: Vec<(String, Datum)>,
    out: String,
}

impl Exec<'_> {
    fn run(&mut self, nodes: &[Node], dot: &Value) -> Result<(), TemplateError> {
        let scope = self.vars.len();
        for node in nodes {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.eval_pipeline(pipe, dot)?;
                    match pipe.decl.first() {
                        Some(name) => self.vars.push((name.clone(), v)),
                        None => self.out.push_str(&go_print(&v)),
                    }
                }
                Node::If(b) | Node::With(b) => {
                    let inner = self.vars.len();
                    let v = self.eval_pipeline(&b.pipe, dot)?;
                    self.vars
                        .extend(b.pipe.decl.iter().map(|n| (n.clone(), v.clone())));
                    match (&v, truthy(&v), node) {
                        (Some(v), true, Node::With(_)) => self.run(&b.body, v)?,
                        (_, true, _) => self.run(&b.body, dot)?,
                        (_, false, _) => self.run(&b.otherwise, dot)?,
                    }
                    self.vars.truncate(inner);
                }
                Node::Range(b) => self.range(b, dot)?,
            }
        }
        self.vars.truncate(scope);
        Ok(())
    }

    fn range(&mut self, b: &Block, dot: &Value) -> Result<(), TemplateError> {
        let v = self.eval_pipeline(&b.pipe, dot)?;
        let items: Vec<(Value, &Value)> = match &v {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::from(i), e))
                .collect(),
            Some(Value::Object(m)) => {
                // Go ranges over a map in sorted key order.
                let mut items: Vec<_> = m
                    .iter()
                    .map(|(k, e)| (Value::String(k.clone()), e))
                    .collect();
                items.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
                items
            }
            Some(other) => {
                let at = b
                    .pipe
                    .cmds
                    .first()
                    .map_or(Pos { line: 1, col: 1 }, |c| c.at);
                return err(
                    at,
                    TemplateErrorKind::NotIterable(format!(
                        "{} (a {})",
                        go_print(&v),
                        type_name(&Some(other.clone()))
                    )),
                );
            }
        };
        if items.is_empty() {
            return self.run(&b.otherwise, dot);
        }
        for (key, elem) in items {
            let scope = self.vars.len();
            match b.pipe.decl.as_slice() {
                [e] => self.vars.push((e.clone(), Some(elem.clone()))),
                [k, e] => {
                    self.vars.push((k.clone(), Some(key)));
                    self.vars.push((e.clone(), Some(elem.clone())));
                }
                _ => {}
            }
            self.run(&b.body, elem)?;
            self.vars.truncate(scope);
        }
        Ok(())
    }

    fn eval_pipeline(&mut self, pipe: &Pipeline, dot: &Value) -> Result<Datum, TemplateError> {
        let mut piped: Option<Datum> = None;
        for cmd in &pipe.cmds {
            let v = match &cmd.call {
                Call::Operand(op) => self.eval_operand(op, dot, cmd.at)?,
                Call::Func { func, args } => {
                    let mut vals = Vec::with_capacity(args.len() + 1);
                    for a in args {
                        vals.push(self.eval_operand(a, dot, cmd.at)?);
                    }
                    vals.extend(piped.take());
                    let first = args
                        .first()
                        .map_or_else(|| "the piped value".to_owned(), |a| a.to_string());
                    call(*func, &vals, &first).map_err(|kind| TemplateError { at: cmd.at, kind })?
                }
            };
            piped = Some(v);
        }
        Ok(piped.flatten())
    }

    fn eval_operand(&mut self, op: &Operand, dot: &Value, at: Pos) -> Result<Datum, TemplateError> {
        match op {
            Operand::Field(path) => walk(Some(dot), path, at),
            Operand::Var(name, path) if name.is_empty() => walk(Some(self.root), path, at),
            Operand::Var(name, path) => {
                let base = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, v)| v.as_ref());
                walk(base, path, at)
            }
            Operand::Lit(v) => Ok(Some(v.clone())),
            Operand::Sub(pipe) => self.eval_pipeline(pipe, dot),
        }
    }
}

/// Follows `.A.B`: a missing key or a null along the way gives "no value" rather than an
/// error, so `{{.Config.Labels.x}}` works on images without labels.
fn walk(mut cur: Option<&Value>, path: &[String], at: Pos) -> Result<Datum, TemplateError> {
    for name in path {
        cur = match cur {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => m.get(name),
            Some(other) => {
                let ty = type_name(&Some(other.clone()));
                return err(
                    at,
                    TemplateErrorKind::NoField {
                        field: name.clone(),
                        ty,
                    },
                );
            }
        };
    }
    Ok(cur.cloned())
}

fn type_name(v: &Datum) -> &'static str {
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

/// Go's truth: false, 0, nil and empty strings, arrays and maps are false.
fn truthy(v: &Datum) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

fn as_int(v: &Datum) -> Option<i64> {
    match v {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        _ => None,
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

fn call(func: Func, args: &[Datum], first: &str) -> Result<Datum, TemplateErrorKind> {
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

// ---------------------------------------------------------------------------------------
// Printing values as Go's fmt does

/// `%v` of a value decoded from JSON, as docker prints a template action's result.
fn go_print(v: &Datum) -> String {
    match v {
        None => "<no value>".to_owned(),
        Some(v) => go_print_value(v),
    }
}

fn go_print_value(v: &Value) -> String {
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
fn go_fmt_g(x: f64, prec: usize) -> String {
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
fn go_quote(s: &str) -> String {
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
fn go_sprint(args: &[Datum]) -> String {
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
fn go_sprintf(format: &str, args: &[Datum]) -> String {
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

// ---------------------------------------------------------------------------------------
// docker's --format words

/// The template of docker's `table ...` format (`table {{.A}}\t{{.B}}`), trimmed of
/// spaces; `None` when `format` is not a table format. A bare `table` gives `Some("")`,
/// which callers take as "the default columns". Like docker, any format that starts with
/// the word `table` counts.
pub fn table_template(format: &str) -> Option<&str> {
    format
        .strip_prefix("table")
        .map(|rest| rest.trim_matches(' '))
}

/// docker turns the two characters `\t` and `\n` of an `images`/`history` `--format` into
/// a tab and a newline before parsing, since shells pass them literally.
pub fn expand_escapes(format: &str) -> String {
    format.replace("\\t", "\t").replace("\\n", "\n")
}

// ---------------------------------------------------------------------------------------
// Human-readable sizes, ages and ids

/// A size as `docker images` shows it: go-units' `HumanSizeWithPrecision(size, 3)`, i.e.
/// decimal units and `%.3g` (`7.8MB`, `1.23GB`, `123kB`, and Go's `1e+03kB` for 999999).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", go_fmt_g(size, 3), UNITS[unit])
}

/// go-units' `HumanDuration` for a whole number of seconds (current go-units, which rounds
/// hours, days, weeks, months and years to the nearest, half up).
pub fn human_duration(secs: i64) -> String {
    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;
    const WEEK: i64 = 7 * DAY;
    const MONTH: i64 = 30 * DAY;
    const YEAR: i64 = 365 * DAY;
    let round = |unit: i64| secs / unit + i64::from((secs % unit) * 2 >= unit);
    let minutes = secs / 60;
    let hours = round(HOUR);
    match secs {
        s if s < 1 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        s if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".to_owned(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_owned(),
        _ if hours < 48 => format!("{hours} hours"),
        s if s < 2 * WEEK => format!("{} days", round(DAY)),
        s if s < 2 * MONTH => format!("{} weeks", round(WEEK)),
        s if s < 2 * YEAR => format!("{} months", round(MONTH)),
        _ => format!("{} years", round(YEAR)),
    }
}

/// The CREATED column: `human_duration` of the age plus " ago".
pub fn human_duration_ago(secs: i64) -> String {
    format!("{} ago", human_duration(secs))
}

/// The 12-character short id docker shows, after dropping an `algorithm:` prefix as
/// docker's `stringid.TruncateID` does.
pub fn truncate_id(digest_hex: &str) -> &str {
    let hex = digest_hex
        .split_once(':')
        .map_or(digest_hex, |(_, hex)| hex);
    hex.char_indices().nth(12).map_or(hex, |(i, _)| &hex[..i])
}

// ---------------------------------------------------------------------------------------
// Tables

/// docker/cli's formatter writes tables through `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`:
/// columns at least 10 wide, 3 spaces of padding. (Releases before the 2023 formatter used
/// a minimum of 20.)
const TABLE_MIN_WIDTH: usize = 10;
const TABLE_PADDING: usize = 3;

/// A header line and rows, aligned as docker prints its tables; each line ends in `\n`.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut text = headers.join("\t");
    text.push('\n');
    for row in rows {
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    align_columns(&text)
}

/// Go's tabwriter (elastic tabstops) with docker's settings over tab-separated lines, as
/// produced by rendering a `table` template once per row. A column is a run of adjacent
/// lines that all have a cell there followed by a tab; the last cell of a line is never
/// padded. Widths count characters (docker counts terminal cells; they differ only for
/// wide characters).
pub fn align_columns(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    format_columns(&lines, &mut Vec::new(), 0, lines.len(), &mut out);
    out
}

fn format_columns(
    lines: &[Vec<&str>],
    widths: &mut Vec<usize>,
    line0: usize,
    line1: usize,
    out: &mut String,
) {
    let column = widths.len();
    let has_column = |line: &[&str]| column + 1 < line.len();
    let mut done = line0;
    let mut this = line0;
    while this < line1 {
        if !has_column(&lines[this]) {
            this += 1;
            continue;
        }
        write_lines(lines, widths, done, this, out);
        let start = this;
        let mut width = TABLE_MIN_WIDTH;
        while this < line1 && has_column(&lines[this]) {
            width = width.max(lines[this][column].chars().count() + TABLE_PADDING);
            this += 1;
        }
        widths.push(width);
        format_columns(lines, widths, start, this, out);
        widths.pop();
        done = this;
    }
    write_lines(lines, widths, done, line1, out);
}

fn write_lines(
    lines: &[Vec<&str>],
    widths: &[usize],
    line0: usize,
    line1: usize,
    out: &mut String,
) {
    for (k, line) in lines[line0..line1].iter().enumerate() {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j) {
                out.push_str(&" ".repeat(w.saturating_sub(cell.chars().count())));
            }
        }
        if line0 + k + 1 < lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn image() -> Value {
        json!({
            "Id": "sha256:0123456789abcdef0123456789abcdef",
            "RepoTags": ["alpine:3.19", "alpine:latest"],
            "Size": 7800000,
            "Ratio": 0.5,
            "Empty": [],
            "Flag": true,
            "Config": {
                "Env": ["PATH=/usr/bin", "A=b"],
                "Labels": {"maintainer": "me", "org.version": "3.19"},
                "Cmd": null
            },
            "RootFS": {"Type": "layers", "Layers": ["sha256:l1", "sha256:l2"]}
        })
    }

    fn render(t: &str) -> String {
        match Template::parse(t).and_then(|t| t.render(&image())) {
            Ok(s) => s,
            Err(e) => panic!("{t}: {e}"),
        }
    }

    fn error(t: &str) -> TemplateError {
        match Template::parse(t).and_then(|t| t.render(&image())) {
            Ok(s) => panic!("{t}: expected an error, got {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn fields_and_go_printing() {
        assert_eq!(render("plain text"), "plain text");
        assert_eq!(render("size={{.Size}}"), "size=7800000");
        assert_eq!(render("{{.Config.Env}}"), "[PATH=/usr/bin A=b]");
        assert_eq!(
            render("{{.Config.Labels}}"),
            "map[maintainer:me org.version:3.19]"
        );
        assert_eq!(render("{{.Flag}} {{.Ratio}} {{.Empty}}"), "true 0.5 []");
        assert_eq!(render("{{.Missing}}|{{.Config.Cmd}}"), "<no value>|<nil>");
        assert_eq!(
            render("{{.Missing.Deeper}}|{{.Config.Cmd.X}}"),
            "<no value>|<no value>"
        );
        assert_eq!(
            render("{{.RootFS}}"),
            "map[Layers:[sha256:l1 sha256:l2] Type:layers]"
        );
        let t = Template::parse("{{.}}").unwrap();
        assert_eq!(
            t.render(&json!({"b": [1, null], "a": 1.5e7})).unwrap(),
            "map[a:15000000 b:[1 <nil>]]"
        );
        assert_eq!(t.render(&json!(0.000001)).unwrap(), "1e-06");
        assert_eq!(t.render(&json!(1234567.5)).unwrap(), "1.2345675e+06");
        assert_eq!(t.render(&json!("s")).unwrap(), "s");
    }

    #[test]
    fn parse_once_render_many() {
        let t = Template::parse("{{.Name}}:{{len .Tags}}").unwrap();
        assert_eq!(t.render(&json!({"Name": "a", "Tags": [1]})).unwrap(), "a:1");
        assert_eq!(t.render(&json!({"Name": "b", "Tags": []})).unwrap(), "b:0");
    }

    #[test]
    fn json_function_and_pipelines() {
        assert_eq!(
            render("{{json .RepoTags}}"),
            r#"["alpine:3.19","alpine:latest"]"#
        );
        assert_eq!(
            render("{{.RepoTags | json}}"),
            r#"["alpine:3.19","alpine:latest"]"#
        );
        assert_eq!(
            render("{{json .Config.Labels}}"),
            r#"{"maintainer":"me","org.version":"3.19"}"#
        );
        assert_eq!(
            render("{{json .Missing}} {{json .Config.Cmd}}"),
            "null null"
        );
        let t = Template::parse("{{json .}}").unwrap();
        assert_eq!(
            t.render(&json!({"b": "<&>", "a": 1})).unwrap(),
            r#"{"a":1,"b":"<&>"}"#
        );
        assert_eq!(render("{{.Config.Env | len | printf \"%03d\"}}"), "002");
        assert_eq!(render("{{index .RepoTags 1 | upper}}"), "ALPINE:LATEST");
    }

    #[test]
    fn index() {
        assert_eq!(render("{{index .RepoTags 0}}"), "alpine:3.19");
        assert_eq!(render(r#"{{index .Config.Labels "maintainer"}}"#), "me");
        assert_eq!(render(r#"{{index .Config.Labels "nope"}}"#), "<no value>");
        assert_eq!(render(r#"{{index . "RootFS" "Layers" 1}}"#), "sha256:l2");
        assert_eq!(render("{{index .RepoTags}}"), "[alpine:3.19 alpine:latest]");
        assert_eq!(render("{{len (index .RepoTags 0)}}"), "11");
    }

    #[test]
    fn range() {
        assert_eq!(
            render(r#"{{range .RootFS.Layers}}{{.}}{{"\n"}}{{end}}"#),
            "sha256:l1\nsha256:l2\n"
        );
        assert_eq!(
            render("{{range $i, $e := .RepoTags}}{{$i}}={{$e}} {{end}}"),
            "0=alpine:3.19 1=alpine:latest "
        );
        assert_eq!(
            render("{{range $e := .RepoTags}}[{{$e}}]{{end}}"),
            "[alpine:3.19][alpine:latest]"
        );
        assert_eq!(
            render("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}"),
            "maintainer=me;org.version=3.19;"
        );
        assert_eq!(render("{{range .Empty}}x{{else}}none{{end}}"), "none");
        assert_eq!(render("{{range .Missing}}x{{else}}none{{end}}"), "none");
        // `$` is the data given to render, whatever the dot is.
        assert_eq!(
            render("{{range .RepoTags}}{{$.Size}},{{end}}"),
            "7800000,7800000,"
        );
    }

    #[test]
    fn conditionals_and_with() {
        assert_eq!(render("{{if .Flag}}yes{{else}}no{{end}}"), "yes");
        assert_eq!(render("{{if .Empty}}yes{{else}}no{{end}}"), "no");
        assert_eq!(
            render("{{if .Missing}}a{{else if .Config.Cmd}}b{{else if .Size}}c{{else}}d{{end}}"),
            "c"
        );
        assert_eq!(render("{{with .RootFS}}{{.Type}}{{end}}"), "layers");
        assert_eq!(render("{{with .Missing}}x{{else}}none{{end}}"), "none");
        assert_eq!(render("{{if not .Empty}}empty{{end}}"), "empty");
        assert_eq!(
            render(r#"{{if eq .RootFS.Type "layers" "x"}}eq{{end}}"#),
            "eq"
        );
        assert_eq!(
            render("{{if ne .Size 7800000}}ne{{else}}same{{end}}"),
            "same"
        );
        assert_eq!(
            render("{{and .Flag .Size}} {{or .Empty .Missing .RootFS.Type}}"),
            "7800000 layers"
        );
        assert_eq!(
            render("{{$t := .RootFS.Type}}{{if $t}}{{$t}}{{end}}"),
            "layers"
        );
    }

    #[test]
    fn string_functions() {
        assert_eq!(
            render("{{upper .RootFS.Type}} {{lower \"ABC\"}}"),
            "LAYERS abc"
        );
        assert_eq!(render(r#"{{join .Config.Env ","}}"#), "PATH=/usr/bin,A=b");
        assert_eq!(render(r#"{{join .Config.Cmd ","}}"#), "");
        assert_eq!(render(r#"{{split "a:b:c" ":"}}"#), "[a b c]");
        assert_eq!(render(r#"{{title "hello big world"}}"#), "Hello Big World");
        assert_eq!(
            render(r#"{{truncate .Id 10}}|{{pad "x" 1 2}}|{{pad "" 1 2}}"#),
            "sha256:012| x  |"
        );
        assert_eq!(render("{{len .Config.Labels}} {{len .RootFS.Type}}"), "2 6");
    }

    #[test]
    fn print_functions() {
        assert_eq!(render("{{println .RootFS.Type .Size}}"), "layers 7800000\n");
        assert_eq!(render("{{print 1 2 \"a\" 3}}"), "1 2a3");
        assert_eq!(
            render(r#"{{printf "%s has %d tags: %v" .RootFS.Type (len .RepoTags) .RepoTags}}"#),
            "layers has 2 tags: [alpine:3.19 alpine:latest]"
        );
        assert_eq!(
            render(r#"{{printf "%q %q" .RootFS.Type .RepoTags}}"#),
            r#""layers" ["alpine:3.19" "alpine:latest"]"#
        );
        assert_eq!(
            render(r#"{{printf "[%-8s][%8s][%.3s][%5d][100%%]" "ab" "cd" "xyzw" 42}}"#),
            "[ab      ][      cd][xyz][   42][100%]"
        );
        assert_eq!(
            render(r#"{{printf "%d %s" "x"}}"#),
            "%!d(string=x) %!s(MISSING)"
        );
        assert_eq!(render(r#"{{printf "%s" "a" 1}}"#), "a%!(EXTRA number=1)");
    }

    #[test]
    fn literals_and_escapes() {
        assert_eq!(
            render(r#"{{"a\tb\n"}}{{"\u00e9\x41\101\\\""}}"#),
            "a\tb\néAA\\\""
        );
        assert_eq!(
            render("{{`raw\\n`}} {{-3}} {{1.5}} {{0x10}} {{true}} {{nil}}"),
            "raw\\n -3 1.5 16 true <nil>"
        );
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(render("a  \n {{- .RootFS.Type -}} \n  b"), "alayersb");
        assert_eq!(render("a {{- .RootFS.Type}} b"), "alayers b");
        assert_eq!(render("x{{/* a comment */}}y"), "xy");
        assert_eq!(render("x \n{{- /* trimmed */ -}}\n y"), "xy");
        assert_eq!(
            render("{{range .RepoTags -}}\n  {{.}}\n{{- end}}"),
            "alpine:3.19alpine:latest"
        );
    }

    fn kind(t: &str) -> TemplateErrorKind {
        error(t).kind
    }

    #[test]
    fn parse_errors() {
        let e = error("x {{foo .A}}");
        assert_eq!(e.kind, TemplateErrorKind::UnknownFunction("foo".into()));
        assert_eq!(e.to_string(), r#"template: 1:5: unknown function "foo""#);
        assert_eq!(kind("a {{.A"), TemplateErrorKind::UnclosedAction);
        assert_eq!(
            error("a {{.A").to_string(),
            "template: 1:3: unclosed action (no matching }})"
        );
        assert_eq!(kind(r#"{{"abc}}"#), TemplateErrorKind::UnterminatedString);
        assert_eq!(kind("{{`abc}}"), TemplateErrorKind::UnterminatedString);
        assert_eq!(
            kind(r#"{{"\q"}}"#),
            TemplateErrorKind::BadEscape("\\q".into())
        );
        let e = error("line\n{{range .RepoTags}}{{.}}");
        assert_eq!(e.kind, TemplateErrorKind::UnclosedBlock("range"));
        assert_eq!(
            e.to_string(),
            "template: 2:1: unclosed range (no matching {{end}})"
        );
        assert_eq!(
            kind("{{if .A}}x{{else}}y"),
            TemplateErrorKind::UnclosedBlock("if")
        );
        assert_eq!(
            kind("{{end}}"),
            TemplateErrorKind::Unexpected("{{end}}".into())
        );
        assert_eq!(
            kind("{{else}}"),
            TemplateErrorKind::Unexpected("{{else}}".into())
        );
        assert_eq!(kind("{{/* open"), TemplateErrorKind::UnclosedComment);
        assert_eq!(kind("{{/* c */ .A}}"), TemplateErrorKind::CommentNotAlone);
        assert_eq!(
            kind("{{$x}}"),
            TemplateErrorKind::UndefinedVariable("x".into())
        );
        assert_eq!(kind("{{if}}{{end}}"), TemplateErrorKind::MissingValue("if"));
        assert_eq!(kind("{{}}"), TemplateErrorKind::MissingValue("command"));
        assert_eq!(kind("{{3x}}"), TemplateErrorKind::BadNumber("3x".into()));
        assert_eq!(kind("{{.A ?}}"), TemplateErrorKind::UnexpectedChar('?'));
        assert!(matches!(
            kind("{{(len .A}}"),
            TemplateErrorKind::Unexpected(_)
        ));
        assert!(matches!(
            kind("{{.A .B}}"),
            TemplateErrorKind::Unexpected(_)
        ));
        assert!(matches!(
            kind("{{.A | .B}}"),
            TemplateErrorKind::Unexpected(_)
        ));
        assert!(matches!(
            kind("{{template \"x\"}}"),
            TemplateErrorKind::Unsupported(_)
        ));
        let e = error("{{index}}");
        let want = Arity { min: 1, max: None };
        assert_eq!(
            e.kind,
            TemplateErrorKind::ArgCount {
                func: "index",
                want,
                got: 0
            }
        );
        assert_eq!(
            e.to_string(),
            "template: 1:3: wrong number of args for index: want at least 1 got 0"
        );
        // The piped value counts as an argument.
        assert!(matches!(
            kind("{{.A | len .B}}"),
            TemplateErrorKind::ArgCount { got: 2, .. }
        ));
        // Variables end with their block.
        assert_eq!(
            kind("{{range $e := .A}}{{end}}{{$e}}"),
            TemplateErrorKind::UndefinedVariable("e".into())
        );
    }

    #[test]
    fn execution_errors() {
        let e = error(r#"{{index .RepoTags "x"}}"#);
        assert_eq!(
            e.to_string(),
            r#"template: 1:3: can't index .RepoTags with "x""#
        );
        assert_eq!(
            kind("{{index .Config.Labels 0}}"),
            TemplateErrorKind::CantIndex {
                what: ".Config.Labels".into(),
                key: "0".into()
            }
        );
        assert_eq!(
            kind("{{index .RepoTags 5}}"),
            TemplateErrorKind::IndexOutOfRange {
                what: ".RepoTags".into(),
                index: 5
            }
        );
        assert_eq!(
            kind("{{index .Missing 0}}"),
            TemplateErrorKind::CantIndex {
                what: ".Missing".into(),
                key: "0".into()
            }
        );
        assert_eq!(
            kind("{{.RootFS.Type.X}}"),
            TemplateErrorKind::NoField {
                field: "X".into(),
                ty: "string"
            }
        );
        assert!(matches!(
            kind("{{range .RootFS.Type}}{{end}}"),
            TemplateErrorKind::NotIterable(_)
        ));
        assert_eq!(
            kind("{{len .Size}}"),
            TemplateErrorKind::WrongType {
                func: "len",
                want: "a string, array or map",
                got: "number"
            }
        );
        assert_eq!(
            kind("{{upper .RepoTags}}"),
            TemplateErrorKind::WrongType {
                func: "upper",
                want: "a string",
                got: "array"
            }
        );
        assert!(matches!(
            kind(r#"{{.RepoTags | join ","}}"#),
            TemplateErrorKind::WrongType { func: "join", .. }
        ));
    }

    #[test]
    fn docker_format_words() {
        assert_eq!(
            table_template("table {{.ID}}\t{{.Size}}"),
            Some("{{.ID}}\t{{.Size}}")
        );
        assert_eq!(table_template("table"), Some(""));
        assert_eq!(table_template("{{.ID}}"), None);
        assert_eq!(
            expand_escapes(r"{{.ID}}\t{{.Size}}\n"),
            "{{.ID}}\t{{.Size}}\n"
        );
    }

    #[test]
    fn human_size_as_go_units() {
        for (bytes, want) in [
            (0, "0B"),
            (1, "1B"),
            (999, "999B"),
            (1000, "1kB"),
            (1024, "1.02kB"),
            (1500, "1.5kB"),
            (10_500, "10.5kB"),
            (123_456, "123kB"),
            // %.3g rounds 999.999 up to four digits, so Go switches to exponent form.
            (999_999, "1e+03kB"),
            (1_000_000, "1MB"),
            (7_800_000, "7.8MB"),
            (1_234_567_890, "1.23GB"),
            (5_000_000_000_000, "5TB"),
            (2_500_000_000_000_000, "2.5PB"),
            (u64::MAX, "18.4EB"),
        ] {
            assert_eq!(human_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn human_duration_as_go_units() {
        const MIN: i64 = 60;
        const HOUR: i64 = 60 * MIN;
        const DAY: i64 = 24 * HOUR;
        const WEEK: i64 = 7 * DAY;
        const MONTH: i64 = 30 * DAY;
        const YEAR: i64 = 365 * DAY;
        for (secs, want) in [
            (-5, "Less than a second"),
            (0, "Less than a second"),
            (1, "1 second"),
            (2, "2 seconds"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (120, "2 minutes"),
            (59 * MIN + 59, "59 minutes"),
            (HOUR, "About an hour"),
            (HOUR + 29 * MIN, "About an hour"),
            (HOUR + 30 * MIN, "2 hours"),
            (3 * HOUR + 29 * MIN, "3 hours"),
            (3 * HOUR + 31 * MIN, "4 hours"),
            (47 * HOUR + 29 * MIN, "47 hours"),
            (47 * HOUR + 30 * MIN, "2 days"),
            (2 * DAY + 17 * HOUR, "3 days"),
            (13 * DAY + 12 * HOUR, "14 days"),
            (2 * WEEK - 1, "14 days"),
            (2 * WEEK, "2 weeks"),
            (2 * WEEK + 4 * DAY, "3 weeks"),
            (MONTH, "4 weeks"),
            (MONTH + 2 * WEEK, "6 weeks"),
            (8 * WEEK + 3 * DAY, "8 weeks"),
            (2 * MONTH - 1, "9 weeks"),
            (2 * MONTH, "2 months"),
            (3 * MONTH + 20 * DAY, "4 months"),
            (24 * MONTH, "24 months"),
            (2 * YEAR - 1, "24 months"),
            (2 * YEAR, "2 years"),
            (3 * YEAR + 8 * MONTH, "4 years"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
        assert_eq!(human_duration_ago(3 * DAY), "3 days ago");
    }

    #[test]
    fn short_ids() {
        assert_eq!(truncate_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(truncate_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(truncate_id("abc"), "abc");
        assert_eq!(truncate_id(""), "");
    }

    #[test]
    fn tables_as_docker_prints_them() {
        let headers = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
        // docker 26 `docker images` with no images.
        assert_eq!(
            table(&headers, &[]),
            "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
        );
        let row = |cells: [&str; 5]| cells.map(str::to_owned).to_vec();
        let rows = [
            row(["nginx", "latest", "4e1b6bae1e48", "3 days ago", "192MB"]),
            row(["tomcat", "latest", "15a617d619d4", "10 days ago", "467MB"]),
            row(["redis", "5.0", "99ee9af2b6b1", "2 years ago", "110MB"]),
        ];
        assert_eq!(
            table(&headers, &rows),
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n\
             nginx        latest    4e1b6bae1e48   3 days ago    192MB\n\
             tomcat       latest    15a617d619d4   10 days ago   467MB\n\
             redis        5.0       99ee9af2b6b1   2 years ago   110MB\n"
        );
    }

    #[test]
    fn columns_are_blocks_of_adjacent_lines() {
        // The middle line has no tab, so the lines around it align separately.
        assert_eq!(
            align_columns("a\tb\nlonger text\nccccccccccc\td"),
            "a         b\nlonger text\nccccccccccc   d"
        );
        assert_eq!(align_columns("é\tx\n"), "é         x\n");
        assert_eq!(align_columns(""), "");
    }
}
