//! Column alignment of docker's tables: Go's tabwriter with docker/cli's settings.

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
mod tests;
