//! `unionmount ps` (also `mounts`): the live mounts of store images, with their image, upper
//! directory and daemon pid. Records of daemons that are gone are cleaned as they are read.

use clap::Args;
use serde_json::json;

use super::listing::{self, Column};
use super::{CliError, StoreArgs};
use crate::image::store::MountRecord;

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  unionmount ps")]
pub struct PsArgs {
    /// Also list mounts whose daemon is gone (their upper directories keep the changes).
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Only the mountpoints.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// table, table TEMPLATE, json, or a Go template ({{.Mountpoint}}, {{.Image}},
    /// {{.Upper}}, {{.Pid}}, {{.Name}}).
    #[arg(long = "format", value_name = "FORMAT")]
    pub format: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

const HEADERS: [Column; 5] = [
    ("Mountpoint", "MOUNTPOINT"),
    ("Image", "IMAGE"),
    ("Upper", "UPPER"),
    ("Pid", "PID"),
    ("Name", "NAME"),
];

pub fn run(args: PsArgs) -> Result<(), CliError> {
    let root = args.store.root();
    let records = MountRecord::list(&root)
        .map_err(|e| CliError::Usage(format!("{}: {e}", root.join("mounts").display())))?;
    let rows: Vec<serde_json::Value> = records
        .iter()
        .filter(|r| args.all || r.is_live())
        .map(|r| {
            json!({
                "Mountpoint": r.state.mountpoint.display().to_string(),
                "Image": r.state.image,
                "Upper": r.state.upper().display().to_string(),
                "Pid": r.pid.map_or("-".to_string(), |p| p.to_string()),
                "Name": r.state.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            })
        })
        .collect();
    if args.quiet {
        for row in &rows {
            println!("{}", row["Mountpoint"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    print!(
        "{}",
        listing::render(args.format.as_deref(), &HEADERS[..4], &HEADERS, &rows)?
    );
    Ok(())
}
