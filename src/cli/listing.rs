//! Printing lists the way docker's `--format` does: the default table, `table TEMPLATE`
//! (with a header made from the same template), `json` (one object per line), or a bare
//! template per row. Rows are JSON objects whose keys are the template fields (`.ID`,
//! `.Repository`...).

use serde_json::Value;

use super::CliError;
use super::format::{Template, align_columns, expand_escapes, table_template};

/// One column: its template field and its header (`("ID", "IMAGE ID")`).
pub type Column = (&'static str, &'static str);

/// Renders `rows` per `format` (`None`: the table of `default`); `headers` names every field
/// a template may use, for the header line of a `table` template.
pub fn render(
    format: Option<&str>,
    default: &[Column],
    headers: &[Column],
    rows: &[Value],
) -> Result<String, CliError> {
    let bad = |e: super::format::TemplateError| CliError::Usage(format!("--format: {e}"));
    let format = format.map(expand_escapes);
    match format.as_deref() {
        Some("json") => {
            let mut out = String::new();
            for row in rows {
                out.push_str(&row.to_string());
                out.push('\n');
            }
            Ok(out)
        }
        None | Some("") => table(&default_template(default), headers, rows).map_err(bad),
        Some(f) => match table_template(f) {
            Some("") => table(&default_template(default), headers, rows).map_err(bad),
            Some(t) => table(t, headers, rows).map_err(bad),
            None => {
                let template = Template::parse(f).map_err(bad)?;
                let mut out = String::new();
                for row in rows {
                    out.push_str(&template.render(row).map_err(bad)?);
                    out.push('\n');
                }
                Ok(out)
            }
        },
    }
}

fn default_template(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|(field, _)| format!("{{{{.{field}}}}}"))
        .collect::<Vec<_>>()
        .join("\t")
}

/// A header line (the template rendered over the header names) and one line per row,
/// aligned like docker's tabwriter.
fn table(
    template: &str,
    headers: &[Column],
    rows: &[Value],
) -> Result<String, super::format::TemplateError> {
    let template = Template::parse(template)?;
    let header: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(field, name)| (field.to_string(), Value::String(name.to_string())))
        .collect();
    let mut text = template.render(&Value::Object(header))?;
    text.push('\n');
    for row in rows {
        text.push_str(&template.render(row)?);
        text.push('\n');
    }
    Ok(align_columns(&text))
}

/// `2024-01-02 03:04:05 +0000 UTC`, how docker prints `CreatedAt`.
pub fn docker_time(secs: i64) -> String {
    let t = crate::image::store::rfc3339(secs, 0);
    // YYYY-MM-DDTHH:MM:SSZ
    format!("{} {} +0000 UTC", &t[..10], &t[11..19])
}

/// Seconds since `created` (RFC 3339) until now, if it parses.
pub fn age(created: Option<&str>) -> Option<(i64, i64)> {
    let at = crate::image::store::parse_rfc3339(created?)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Some((at, now - at))
}
