//! `unionmount tag`, `rmi` and `image prune`: naming and removing images of the store.

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;

use super::format::human_size;
use super::{CliError, StoreArgs};
use crate::image::store::remove::{PruneFilter, Removal};

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  unionmount tag alpine:3.19 myalpine:v1")]
pub struct TagArgs {
    /// The image to name: NAME[:TAG], an ID or a digest.
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// The new name.
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run_tag(args: TagArgs) -> Result<(), CliError> {
    let store = args.store.open()?;
    store.tag(&args.source, &args.target)?;
    Ok(())
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  unionmount rmi alpine:3.19\n  unionmount rmi -f 0123456789ab")]
pub struct RmiArgs {
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
    /// Remove an image tagged in several repositories, or one that is mounted (the mount
    /// goes on reading the files it has open).
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run_rmi(args: RmiArgs) -> Result<(), CliError> {
    let store = args.store.open()?;
    let mut failed = false;
    for name in &args.images {
        match store.remove(name, args.force) {
            Ok((removed, _)) => {
                for line in removed {
                    println!("{line}");
                }
            }
            Err(e) => {
                eprintln!("unionmount: {e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(CliError::Reported)
    } else {
        Ok(())
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  unionmount image prune -f\n  unionmount image prune -a -f \
                        --filter until=24h"
)]
pub struct PruneArgs {
    /// Remove every image no mount uses, not only dangling ones.
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// until=TIMESTAMP|DURATION: only images created before (e.g. until=24h,
    /// until=2024-01-02T00:00:00Z, until=1700000000).
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run_prune(args: PruneArgs) -> Result<(), CliError> {
    let mut until = None;
    for f in &args.filters {
        match f.split_once('=') {
            Some(("until", v)) => until = Some(parse_until(v)?),
            _ => {
                return Err(CliError::Usage(format!(
                    "--filter {f:?}: only until=TIMESTAMP|DURATION is supported"
                )));
            }
        }
    }
    let store = args.store.open()?;
    if !args.force {
        let what = if args.all {
            "all images without at least one mount associated to them"
        } else {
            "all dangling images"
        };
        eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let stdin = std::io::stdin();
        if !stdin.is_terminal() && stdin.lock().read_line(&mut answer).unwrap_or(0) == 0 {
            eprintln!();
        } else if stdin.is_terminal() {
            let _ = stdin.lock().read_line(&mut answer);
        }
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Ok(());
        }
    }
    let report = store.prune(PruneFilter {
        all: args.all,
        until,
    })?;
    if !report.removed.is_empty() {
        println!("Deleted Images:");
        for line in &report.removed {
            match line {
                Removal::Untagged(t) => println!("untagged: {t}"),
                Removal::Deleted(d) => println!("deleted: {d}"),
            }
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(report.reclaimed));
    Ok(())
}

/// `until=` as docker takes it: a duration before now (`90m`, `24h`, `1h30m`), a Unix time,
/// or an RFC 3339 time / date.
fn parse_until(v: &str) -> Result<i64, CliError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if let Some(secs) = parse_duration(v) {
        return Ok(now - secs);
    }
    if let Ok(unix) = v.parse::<i64>() {
        return Ok(unix);
    }
    if let Some(t) = crate::image::store::parse_rfc3339(v) {
        return Ok(t);
    }
    if v.len() == 10
        && let Some(t) = crate::image::store::parse_rfc3339(&format!("{v}T00:00:00Z"))
    {
        return Ok(t);
    }
    Err(CliError::Usage(format!(
        "--filter until={v}: want a duration (24h, 90m, 1h30m), a Unix time or an RFC 3339 time"
    )))
}

/// Go's `time.ParseDuration` for whole units h, m, s (`1h30m`, `45s`).
fn parse_duration(v: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut num = String::new();
    let mut any = false;
    for c in v.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().ok()?;
        num.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        any = true;
    }
    (any && num.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Some(86_400));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("45s"), Some(45));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("3d"), None);
        assert_eq!(parse_until("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_until("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000);
        assert!(parse_until("soon").is_err());
    }
}
