//! The subset of Go's `text/template` that docker's `--format` takes, evaluated against
//! JSON: [`lex`] cuts the text into literal text and tokens, [`parse`] builds the tree and
//! reports what Go reports at parse time, [`exec`] walks it over the data, calling the
//! functions in [`funcs`].

mod error;
mod exec;
mod funcs;
mod lex;
mod parse;

use serde_json::Value;

use parse::Node;

pub use error::{Arity, Pos, TemplateError, TemplateErrorKind};

/// A parsed template: parse once with [`Template::parse`], render for each item.
#[derive(Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        Ok(Template {
            nodes: parse::parse(src)?,
        })
    }

    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        exec::render(&self.nodes, data)
    }
}

#[cfg(test)]
mod tests;
