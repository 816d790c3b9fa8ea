//! `unionmount inspect IMAGE...` and `unionmount history IMAGE`: an image's details as
//! `docker image inspect` shows them, and its config's history.

use clap::Args;
use serde_json::{Value, json};

use super::format::{Template, human_duration_ago, human_size, truncate_id};
use super::listing::{self, Column};
use super::{CliError, StoreArgs};
use crate::image::store::{Store, StoredImage};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  unionmount inspect alpine:3.19\n  unionmount inspect \
                        --format '{{.Os}}/{{.Architecture}}' alpine\n  unionmount inspect \
                        --format '{{range .RootFS.Layers}}{{.}}{{\"\\n\"}}{{end}}' alpine"
)]
pub struct InspectArgs {
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
    /// A Go template applied to each image ({{.Id}}, {{.Config.Env}}, {{json .RootFS}}...).
    #[arg(short = 'f', long = "format", value_name = "TEMPLATE")]
    pub format: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run_inspect(args: InspectArgs) -> Result<(), CliError> {
    let store = args.store.open()?;
    let template = match args.format.as_deref() {
        Some("json") | None => None,
        Some(f) => Some(Template::parse(f).map_err(|e| CliError::Usage(format!("--format: {e}")))?),
    };
    let mut found = Vec::new();
    let mut first_error = None;
    for name in &args.images {
        match store.find(name) {
            Ok(image) => found.push(inspect_value(&store, &image)),
            Err(e) => {
                eprintln!("unionmount: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    match template {
        None => {
            let mut out = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
            serde::Serialize::serialize(&found, &mut ser)
                .map_err(|e| CliError::Usage(format!("inspect: {e}")))?;
            println!("{}", String::from_utf8_lossy(&out));
        }
        Some(t) => {
            for value in &found {
                let text = t
                    .render(value)
                    .map_err(|e| CliError::Usage(format!("--format: {e}")))?;
                println!("{text}");
            }
        }
    }
    match first_error {
        // Already printed; the exit code says it.
        Some(_) => Err(CliError::Reported),
        None => Ok(()),
    }
}

/// The `docker image inspect` object of an image.
pub fn inspect_value(store: &Store, image: &StoredImage) -> Value {
    let raw: Value = serde_json::from_slice(&image.config_raw).unwrap_or(Value::Null);
    let field = |k: &str| raw.get(k).cloned().unwrap_or(Value::Null);
    let string = |k: &str| Value::String(raw.get(k).and_then(Value::as_str).unwrap_or("").into());
    let _ = store;
    let mut value = json!({
        "Id": image.config_digest.to_string(),
        "RepoTags": image.tags,
        "RepoDigests": image.repo_digests(),
        "Parent": "",
        "Comment": string("comment"),
        "Created": string("created"),
        "DockerVersion": string("docker_version"),
        "Author": string("author"),
        "Config": field("config"),
        "Architecture": string("architecture"),
        "Os": string("os"),
        "Size": image.size(),
        "RootFS": {
            "Type": raw.pointer("/rootfs/type").cloned().unwrap_or(Value::Null),
            "Layers": raw.pointer("/rootfs/diff_ids").cloned().unwrap_or(Value::Null),
        },
        "Metadata": {
            "LastTagTime": image.last_tag_time.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        },
        "Descriptor": {
            "mediaType": image.manifest_media_type,
            "digest": image.manifest_digest.to_string(),
            "size": image.manifest_size,
        },
    });
    if let (Some(variant), Some(obj)) = (raw.get("variant"), value.as_object_mut()) {
        obj.insert("Variant".into(), variant.clone());
    }
    // Not docker's: an image pulled with --lazy, whose layers are read from its registry
    // (sizes above come from the descriptors and the indexes, not from blobs).
    if image.lazy
        && let Some(meta) = value.get_mut("Metadata").and_then(|m| m.as_object_mut())
    {
        meta.insert("Lazy".into(), Value::Bool(true));
        if let Some(source) = &image.source {
            meta.insert("Source".into(), Value::String(format!("docker://{source}")));
        }
    }
    value
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  unionmount history alpine\n  unionmount history \
                        --no-trunc --format '{{.CreatedBy}}' alpine"
)]
pub struct HistoryArgs {
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Do not shorten IDs and commands.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only the image IDs.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// table, table TEMPLATE, json, or a Go template ({{.ID}}, {{.CreatedSince}},
    /// {{.CreatedAt}}, {{.CreatedBy}}, {{.Size}}, {{.Comment}}).
    #[arg(long = "format", value_name = "FORMAT")]
    pub format: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

const HISTORY_HEADERS: [Column; 6] = [
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

pub fn run_history(args: HistoryArgs) -> Result<(), CliError> {
    let store = args.store.open()?;
    let image = store.find(&args.image)?;
    let layer_sizes = layer_sizes(&store, &image);
    let history = image.config.history.clone().unwrap_or_default();
    let mut rows = Vec::new();
    let mut layer = 0;
    for entry in &history {
        let empty = entry.empty_layer.unwrap_or(false);
        let size = if empty {
            0
        } else {
            let s = layer_sizes.get(layer).copied().unwrap_or(0);
            layer += 1;
            s
        };
        let created_by = entry.created_by.clone().unwrap_or_default();
        let (since, at) = match listing::age(entry.created.as_deref()) {
            Some((at, age)) => (human_duration_ago(age), listing::docker_time(at)),
            None => ("N/A".to_string(), "N/A".to_string()),
        };
        rows.push(json!({
            "ID": "<missing>",
            "CreatedSince": since,
            "CreatedAt": at,
            "CreatedBy": if args.no_trunc { created_by } else { ellipsis(&created_by, 45) },
            "Size": human_size(size),
            "Comment": entry.comment.clone().unwrap_or_default(),
        }));
    }
    rows.reverse();
    let id = if args.no_trunc {
        image.config_digest.to_string()
    } else {
        truncate_id(image.config_digest.hex()).to_string()
    };
    if let Some(top) = rows.first_mut() {
        top["ID"] = Value::String(id.clone());
    } else {
        rows.push(
            json!({"ID": id, "CreatedSince": "N/A", "CreatedAt": "N/A", "CreatedBy": "",
            "Size": human_size(image.size()), "Comment": ""}),
        );
    }
    if args.quiet {
        for row in &rows {
            println!("{}", row["ID"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    let default: Vec<Column> = HISTORY_HEADERS
        .iter()
        .copied()
        .filter(|(f, _)| *f != "CreatedAt")
        .collect();
    print!(
        "{}",
        listing::render(args.format.as_deref(), &default, &HISTORY_HEADERS, &rows)?
    );
    Ok(())
}

/// Unpacked size of each layer (bottom first), from its saved index when there is one,
/// else its blob size.
fn layer_sizes(store: &Store, image: &StoredImage) -> Vec<u64> {
    let options = crate::layer::LayerOptions {
        index_cache: Some(store.index_dir()),
        ..Default::default()
    };
    let Ok(resolved) = store.image(image, &image.config_digest.to_string()) else {
        return Vec::new();
    };
    let mut sizes: Vec<u64> = resolved
        .layers
        .iter()
        .map(|l| match l {
            crate::layer::blob::LayerSource::Blob(b) => {
                crate::layer::tar::TarLayer::open_blob(b, &options).map_or(b.len, |t| t.tar_len())
            }
            crate::layer::blob::LayerSource::Path(_) => 0,
            crate::layer::blob::LayerSource::Remote(r) => r.source.len(),
        })
        .collect();
    sizes.reverse();
    sizes
}

/// docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}
