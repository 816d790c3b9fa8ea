//! `unionmount images` (also `image ls`): the store's images as docker lists them.

use clap::Args;
use serde_json::{Value, json};

use super::format::{human_duration_ago, human_size, truncate_id};
use super::listing::{self, Column};
use super::{CliError, StoreArgs};
use crate::image::store::{StoredImage, find_in, split_tag};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  unionmount images\n  unionmount images --filter \
                        dangling=true -q\n  unionmount images --format '{{.Repository}}:{{.Tag}}'"
)]
pub struct ImagesArgs {
    /// Only images of this repository (NAME or NAME:TAG, * and ? as wildcards).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
    /// Show all images (the store keeps no intermediate images, so the same list).
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Only the image IDs.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Show the manifest digests.
    #[arg(long = "digests")]
    pub digests: bool,
    /// Do not shorten IDs.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// dangling=true|false, reference=PATTERN, before=IMAGE, since=IMAGE, label=KEY[=VALUE].
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// table, table TEMPLATE, json, or a Go template ({{.Repository}}, {{.Tag}}, {{.ID}},
    /// {{.Digest}}, {{.CreatedSince}}, {{.CreatedAt}}, {{.Size}}).
    #[arg(long = "format", value_name = "FORMAT")]
    pub format: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

const HEADERS: [Column; 7] = [
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
];

/// A parsed `--filter`.
enum Filter {
    Dangling(bool),
    Reference(String),
    /// Created before / after (seconds) the image named.
    Before(i64),
    Since(i64),
    Label(String, Option<String>),
}

pub fn run(args: ImagesArgs) -> Result<(), CliError> {
    let store = args.store.open()?;
    let mut images = store.images()?;
    let filters = args
        .filters
        .iter()
        .map(|f| parse_filter(f, &images))
        .collect::<Result<Vec<_>, _>>()?;
    // Newest first, as docker lists them.
    images.sort_by_key(|i| std::cmp::Reverse(created(i)));
    let mut rows = Vec::new();
    for image in &images {
        if !filters.iter().all(|f| image_matches(f, image)) {
            continue;
        }
        let tags: Vec<Option<&String>> = if image.tags.is_empty() {
            vec![None]
        } else {
            image.tags.iter().map(Some).collect()
        };
        for tag in tags {
            let ref_filter = filters.iter().all(|f| match (f, tag) {
                (Filter::Reference(p), Some(t)) => reference_matches(p, t),
                (Filter::Reference(_), None) => false,
                _ => true,
            });
            let positional = match (&args.reference, tag) {
                (None, _) => true,
                (Some(p), Some(t)) => reference_matches(p, t),
                (Some(_), None) => false,
            };
            if ref_filter && positional {
                rows.push(row(image, tag.map(String::as_str), args.no_trunc));
            }
        }
    }
    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for row in &rows {
            let id = row["ID"].as_str().unwrap_or_default().to_string();
            if seen.insert(id.clone()) {
                println!("{id}");
            }
        }
        return Ok(());
    }
    let default: Vec<Column> = HEADERS
        .iter()
        .copied()
        .filter(|(f, _)| match *f {
            "Digest" => args.digests,
            "CreatedAt" => false,
            _ => true,
        })
        .collect();
    print!(
        "{}",
        listing::render(args.format.as_deref(), &default, &HEADERS, &rows)?
    );
    Ok(())
}

fn created(image: &StoredImage) -> i64 {
    image
        .config
        .created
        .as_deref()
        .and_then(crate::image::store::parse_rfc3339)
        .unwrap_or(0)
}

/// One line of the listing: the image under one tag (or `<none>`).
fn row(image: &StoredImage, tag: Option<&str>, no_trunc: bool) -> Value {
    let (repo, tag) = match tag {
        Some(t) => split_tag(t),
        None => ("<none>", "<none>"),
    };
    let id = if no_trunc {
        image.config_digest.to_string()
    } else {
        truncate_id(image.config_digest.hex()).to_string()
    };
    let (since, at) = match listing::age(image.config.created.as_deref()) {
        Some((at, age)) => (human_duration_ago(age), listing::docker_time(at)),
        None => ("N/A".to_string(), "N/A".to_string()),
    };
    json!({
        "Containers": "N/A",
        "CreatedAt": at,
        "CreatedSince": since,
        "Digest": image.manifest_digest.to_string(),
        "ID": id,
        "Repository": repo,
        "SharedSize": "N/A",
        "Size": human_size(image.size()),
        "Tag": tag,
        "UniqueSize": "N/A",
        "VirtualSize": human_size(image.size()),
    })
}

fn parse_filter(text: &str, images: &[StoredImage]) -> Result<Filter, CliError> {
    let usage = |m: String| CliError::Usage(format!("--filter {text:?}: {m}"));
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| usage("want KEY=VALUE".into()))?;
    let when = |name: &str| -> Result<i64, CliError> {
        let image = find_in(images, name)?;
        Ok(created(image))
    };
    Ok(match key {
        "dangling" => match value {
            "true" | "1" => Filter::Dangling(true),
            "false" | "0" => Filter::Dangling(false),
            _ => return Err(usage("dangling is true or false".into())),
        },
        "reference" => Filter::Reference(value.to_string()),
        "before" => Filter::Before(when(value)?),
        "since" => Filter::Since(when(value)?),
        "label" => match value.split_once('=') {
            Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
            None => Filter::Label(value.to_string(), None),
        },
        _ => {
            return Err(usage(format!(
                "unknown filter {key:?} (dangling, reference, before, since, label)"
            )));
        }
    })
}

fn image_matches(filter: &Filter, image: &StoredImage) -> bool {
    match filter {
        Filter::Dangling(d) => image.is_dangling() == *d,
        Filter::Reference(_) => true,
        Filter::Before(t) => created(image) < *t,
        Filter::Since(t) => created(image) > *t,
        Filter::Label(k, v) => {
            let labels = image.config.config.as_ref().and_then(|c| c.labels.as_ref());
            match (labels.and_then(|l| l.get(k)), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            }
        }
    }
}

/// docker's reference filter: the pattern is matched (shell-style) against the repository,
/// or against `REPO:TAG` when it has a tag.
fn reference_matches(pattern: &str, tag: &str) -> bool {
    let (repo, _) = split_tag(tag);
    let has_tag = pattern
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    if has_tag {
        glob(pattern, tag)
    } else {
        glob(pattern, repo)
    }
}

/// Shell-style match of `*` (not across `/`, as Go's path.Match) and `?`.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != b'/')
                .any(|i| go(rest, &t[i..])),
            Some((b'?', rest)) => t.first().is_some_and(|&c| c != b'/') && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_patterns() {
        assert!(reference_matches("alpine", "alpine:3.19"));
        assert!(reference_matches("alp*", "alpine:3.19"));
        assert!(reference_matches("alpine:3.*", "alpine:3.19"));
        assert!(!reference_matches("alpine:3.18", "alpine:3.19"));
        assert!(!reference_matches("*", "example.com/app:1"));
        assert!(reference_matches("*/app", "example.com/app:1"));
        assert!(reference_matches(
            "localhost:5000/app",
            "localhost:5000/app:v1"
        ));
    }
}
