//! `unionmount ps` (also `mounts`): the live mounts of store images, with their image, upper
//! directory and daemon pid. Records of daemons that are gone are cleaned as they are read.

use std::path::Path;

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
                "Upper": if r.state.upper().exists() {
                    r.state.upper().display().to_string()
                } else {
                    "-".to_string()
                },
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

/// The record of the mount `what` names: a mountpoint, or a record name (or its prefix).
pub fn find_mount(root: &Path, what: &str) -> Result<MountRecord, CliError> {
    let records = MountRecord::list(root)
        .map_err(|e| CliError::Usage(format!("{}: {e}", root.join("mounts").display())))?;
    if let Ok(path) = std::fs::canonicalize(what)
        && let Some(r) = records.iter().find(|r| r.state.mountpoint == path)
    {
        return Ok(r.clone());
    }
    let named: Vec<&MountRecord> = records
        .iter()
        .filter(|r| {
            r.state
                .dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(what))
        })
        .collect();
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(CliError::Usage(format!(
            "no mount {what:?} (see `unionmount ps -a`)"
        ))),
        many => Err(CliError::Usage(format!(
            "{what:?} names {} mounts; give more of the name or the mountpoint",
            many.len()
        ))),
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  unionmount rm /mnt/app\n  unionmount rm -f demo-latest_app")]
pub struct RmArgs {
    /// Mounts to remove, by mountpoint or NAME (as `ps -a` shows; a prefix will do).
    #[arg(value_name = "MOUNTPOINT|NAME", required = true)]
    pub mounts: Vec<String>,
    /// Unmount a live mount first.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `unionmount rm`: deletes mounts' state (upper, work, record), as `docker rm` deletes a
/// container. A live mount is refused unless `-f`, which unmounts it first.
pub fn run_rm(args: RmArgs) -> Result<(), CliError> {
    let root = args.store.root();
    let mut failed = false;
    for what in &args.mounts {
        let result = (|| -> Result<(), CliError> {
            let record = find_mount(&root, what)?;
            if record.is_live() {
                if !args.force {
                    return Err(CliError::Usage(format!(
                        "{what}: mounted on {} (unmount it first, or use -f)",
                        record.state.mountpoint.display()
                    )));
                }
                crate::mount::unmount(&record.state.mountpoint, false)?;
                if record.pid.is_some() {
                    super::umount::wait_gone(&record);
                }
            }
            std::fs::remove_dir_all(&record.state.dir)
                .map_err(|e| CliError::Usage(format!("{}: {e}", record.state.dir.display())))?;
            println!("{what}");
            Ok(())
        })();
        if let Err(e) = result {
            eprintln!("unionmount: {e}");
            failed = true;
        }
    }
    if failed {
        Err(CliError::Reported)
    } else {
        Ok(())
    }
}
