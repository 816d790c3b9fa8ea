//! Execution: walks the parsed tree over the data and writes the output.

use serde_json::Value;

use super::error::{Pos, TemplateError, TemplateErrorKind, err};
use super::funcs::call;
use super::parse::{Block, Call, Node, Operand, Pipeline};
use crate::cli::format::gofmt::{Datum, go_print, type_name};

/// The output of `nodes` with `data` as both the dot and `$`.
pub(super) fn render(nodes: &[Node], data: &Value) -> Result<String, TemplateError> {
    let mut exec = Exec {
        root: data,
        vars: Vec::new(),
        out: String::new(),
    };
    exec.run(nodes, data)?;
    Ok(exec.out)
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

/// Go's truth: false, 0, nil and empty strings, arrays and maps are false.
pub(super) fn truthy(v: &Datum) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}
