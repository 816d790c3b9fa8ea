//! The sizes, ages and short ids docker prints, following github.com/docker/go-units and
//! docker's `stringid`.

use super::gofmt::go_fmt_g;

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

#[cfg(test)]
mod tests;
