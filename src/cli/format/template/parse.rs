//! The parsed tree, and the parser that builds it from lexed pieces.

use std::fmt;

use serde_json::Value;

use super::error::{Pos, TemplateError, TemplateErrorKind, err};
use super::funcs::Func;
use super::lex::{Piece, Spanned, Token, lex, literal_text, path_text};

#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    Action(Pipeline),
    If(Block),
    With(Block),
    Range(Block),
}

#[derive(Debug)]
pub(super) struct Block {
    pub(super) pipe: Pipeline,
    pub(super) body: Vec<Node>,
    pub(super) otherwise: Vec<Node>,
}

#[derive(Debug)]
pub(super) struct Pipeline {
    /// `$x :=` or, in `range`, `$i, $e :=`.
    pub(super) decl: Vec<String>,
    pub(super) cmds: Vec<Command>,
}

#[derive(Debug)]
pub(super) struct Command {
    pub(super) call: Call,
    pub(super) at: Pos,
}

#[derive(Debug)]
pub(super) enum Call {
    Operand(Operand),
    Func { func: Func, args: Vec<Operand> },
}

#[derive(Debug)]
pub(super) enum Operand {
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

/// The tree of a whole template; an `{{end}}` or `{{else}}` with no block to close is an
/// error.
pub(super) fn parse(src: &str) -> Result<Vec<Node>, TemplateError> {
    let mut parser = Parser {
        pieces: lex(src)?.into_iter(),
        vars: Vec::new(),
    };
    let (nodes, stop) = parser.parse_list()?;
    match stop {
        Stop::Eof => Ok(nodes),
        Stop::End(at) => err(at, TemplateErrorKind::Unexpected("{{end}}".into())),
        Stop::Else(_, at) => err(at, TemplateErrorKind::Unexpected("{{else}}".into())),
    }
}

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
