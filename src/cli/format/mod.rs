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

mod gofmt;
mod human;
mod table;
mod template;

pub use human::{human_duration, human_duration_ago, human_size, truncate_id};
pub use table::{align_columns, table};
pub use template::{Arity, Pos, Template, TemplateError, TemplateErrorKind};

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

#[cfg(test)]
mod tests;
