//! What goes wrong in a template, and where.

use std::fmt;

use crate::cli::format::gofmt::go_quote;

/// Where in the template text something went wrong (1-based, columns in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub(super) fn at(src: &str, offset: usize) -> Pos {
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

pub(super) fn err<T>(at: Pos, kind: TemplateErrorKind) -> Result<T, TemplateError> {
    Err(TemplateError { at, kind })
}
