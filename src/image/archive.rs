//! Reading a `docker save` archive (also what `skopeo copy … docker-archive:` writes) in
//! place: one pass over the outer tar records where each member's data lies, then
//! `manifest.json` (`Config`, `RepoTags`, `Layers`) and the config are read from their byte
//! ranges, and every layer becomes a byte range of the archive file.
//!
//! Both layouts are read: the old one (`<id>/layer.tar`, `<config-hex>.json`, repeated layers
//! stored once and linked by symlinks) and the one Docker 25+ writes, which nests an OCI
//! layout (`blobs/sha256/HEX` members; `manifest.json` points into it). A layer member named
//! by its digest (`blobs/sha256/HEX`) gets that digest checked when indexed; one in the old
//! layout has none, and only its diff_id is checked. Compressed archives (`docker save | gzip`)
//! are refused: a member of a compressed stream has no byte range to read in place.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use super::oci::{ArchiveEntry, ImageConfig};
use super::reference::{Reference, Select, normalize_repo_tag};
use super::{Cause, Errors, Image, ImageError, MAX_JSON_BYTES};
use crate::layer::blob::{BlobRef, Compression, Digest, LayerSource};

/// How many symlinks one member name may go through.
const MAX_LINK_HOPS: usize = 16;

/// Where a member's data is in the archive file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Member {
    offset: u64,
    size: u64,
}

#[derive(Clone, Debug)]
enum Node {
    Data(Member),
    /// A symlink or hard link, its target as an archive path.
    Link(String),
}

/// The members of an archive by normalised path.
struct Members<'a> {
    e: &'a Errors<'a>,
    path: PathBuf,
    file: File,
    len: u64,
    nodes: HashMap<String, Node>,
}

/// Resolves one image of the archive at `file`.
pub fn resolve(reference: &Reference, file: &Path, select: &Select) -> Result<Image, ImageError> {
    let name = reference.to_string();
    let e = Errors(&name);
    let members = Members::scan(&e, file)?;
    let manifest: Vec<ArchiveEntry> =
        super::parse_json(&e, "manifest.json", &members.read_small("manifest.json")?)?;
    let entry = choose(&e, &manifest, select)?;

    let config_data = members.read_small(&entry.config)?;
    let what = format!("config {}", entry.config);
    let config_digest = super::sha256_of(&config_data);
    if let Some(expected) = digest_in_name(&entry.config) {
        super::verify(&e, &what, &config_data, config_data.len() as u64, &expected)?;
    }
    let config: ImageConfig = super::parse_json(&e, &what, &config_data)?;
    let diff_ids = config.diff_ids().map_err(|m| e.invalid(m))?;
    if diff_ids.len() != entry.layers.len() {
        return Err(e.err(Cause::LayerCount {
            layers: entry.layers.len(),
            diff_ids: diff_ids.len(),
        }));
    }
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (layer, diff_id) in entry.layers.iter().zip(diff_ids) {
        let (target, member) = members.find(layer)?;
        layers.push(LayerSource::Blob(BlobRef {
            path: members.path.clone(),
            offset: member.offset,
            len: member.size,
            // docker save stores layers uncompressed, but nothing in the archive says so.
            compression: Compression::Detect,
            digest: target.strip_prefix("blobs/").and_then(digest_in_name),
            diff_id: Some(diff_id),
            image: Some(name.clone()),
        }));
    }
    layers.reverse();
    Ok(Image {
        reference: name.clone(),
        manifest_digest: None,
        config_digest: Some(config_digest),
        config,
        layers,
        manifest_raw: None,
        config_raw: config_data,
        repo_tags: entry
            .repo_tags
            .iter()
            .flatten()
            .filter_map(|t| normalize_repo_tag(t))
            .collect(),
    })
}

/// The image of `manifest.json` the selector names.
fn choose<'m>(
    e: &Errors,
    manifest: &'m [ArchiveEntry],
    select: &Select,
) -> Result<&'m ArchiveEntry, ImageError> {
    let all_tags = || -> Vec<String> {
        manifest
            .iter()
            .flat_map(|m| m.repo_tags.iter().flatten().cloned())
            .collect()
    };
    match select {
        Select::Default => match manifest {
            [] => Err(e.invalid("manifest.json lists no images")),
            [only] => Ok(only),
            many => Err(e.invalid(format!(
                "the archive holds {} images: name one as docker-archive:FILE:NAME:TAG or \
                 docker-archive:FILE:@N (tags: {})",
                many.len(),
                all_tags().join(", ")
            ))),
        },
        Select::Tag(tag) => manifest
            .iter()
            .find(|m| {
                m.repo_tags
                    .iter()
                    .flatten()
                    .any(|t| normalize_repo_tag(t).as_deref() == Some(tag.as_str()))
            })
            .ok_or_else(|| {
                e.err(Cause::UnknownTag {
                    tag: tag.clone(),
                    tags: all_tags(),
                })
            }),
        Select::Index(i) => manifest.get(*i).ok_or_else(|| {
            e.invalid(format!(
                "manifest.json lists {} images, so @{i} is out of range",
                manifest.len()
            ))
        }),
        Select::Digest(d) => Err(e.err(Cause::Unsupported(format!(
            "docker archives are not addressed by digest ({d})"
        )))),
    }
}

/// `sha256/HEX` or `HEX.json` (the old layout names the config by its digest, the image ID).
fn digest_in_name(name: &str) -> Option<Digest> {
    let base = name.strip_prefix("blobs/").unwrap_or(name);
    let hex = base
        .strip_prefix("sha256/")
        .or_else(|| base.strip_suffix(".json"))?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// `a/./b/../c/` → `a/c`; `None` if it climbs above the archive root.
fn normalize(path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(parts.join("/"))
}

impl<'a> Members<'a> {
    /// One pass over the archive's headers (data is skipped, not read).
    fn scan(e: &'a Errors<'a>, path: &Path) -> Result<Members<'a>, ImageError> {
        let path = std::fs::canonicalize(path).map_err(|err| e.io(path, err))?;
        let mut file = File::open(&path).map_err(|err| e.io(&path, err))?;
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic).map_err(|err| e.io(&path, err))?;
        let compressed = match &magic[..n] {
            [0x1f, 0x8b, ..] => Some("gzip"),
            [0x28, 0xb5, 0x2f, 0xfd] => Some("zstd"),
            _ => None,
        };
        if let Some(kind) = compressed {
            return Err(e.err(Cause::Unsupported(format!(
                "{} is {kind}-compressed; a docker archive is read in place, so decompress it first",
                path.display()
            ))));
        }
        let bad = |err: std::io::Error| {
            e.invalid(format!(
                "{}: not a readable tar archive: {err}",
                path.display()
            ))
        };
        let mut nodes = HashMap::new();
        {
            let reader = File::open(&path).map_err(|err| e.io(&path, err))?;
            let mut archive = tar::Archive::new(reader);
            for entry in archive.entries_with_seek().map_err(bad)? {
                let entry = entry.map_err(bad)?;
                let Some(name) = entry.path().ok().and_then(|p| normalize(&p)) else {
                    continue;
                };
                let kind = entry.header().entry_type();
                let node = if kind.is_file() {
                    Node::Data(Member {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    })
                } else if kind.is_symlink() || kind.is_hard_link() {
                    let Some(target) = entry.link_name().ok().flatten() else {
                        continue;
                    };
                    // A symlink is relative to its own directory, a hard link to the root.
                    let base = if kind.is_symlink() {
                        Path::new(&name)
                            .parent()
                            .unwrap_or(Path::new(""))
                            .join(&target)
                    } else {
                        target.into_owned()
                    };
                    match normalize(&base) {
                        Some(t) => Node::Link(t),
                        None => continue,
                    }
                } else {
                    continue;
                };
                nodes.insert(name, node);
            }
        }
        let len = file.metadata().map_err(|err| e.io(&path, err))?.len();
        Ok(Members {
            e,
            path,
            file,
            len,
            nodes,
        })
    }

    /// The member called `name` (links followed): its final name and its byte range.
    fn find(&self, name: &str) -> Result<(String, Member), ImageError> {
        let mut current = normalize(Path::new(name)).unwrap_or_default();
        for _ in 0..MAX_LINK_HOPS {
            match self.nodes.get(&current) {
                Some(Node::Data(m))
                    if m.offset
                        .checked_add(m.size)
                        .is_some_and(|end| end <= self.len) =>
                {
                    return Ok((current, *m));
                }
                Some(Node::Data(_)) => {
                    return Err(self.e.invalid(format!(
                        "{}: member {name:?} runs past the end of the archive (truncated?)",
                        self.path.display()
                    )));
                }
                Some(Node::Link(t)) => current = t.clone(),
                None => {
                    return Err(self.e.invalid(format!(
                        "{}: member {name:?} is missing",
                        self.path.display()
                    )));
                }
            }
        }
        Err(self.e.invalid(format!(
            "{}: member {name:?} is a link loop",
            self.path.display()
        )))
    }

    /// The whole data of a small member (a JSON document).
    fn read_small(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let (_, m) = self.find(name)?;
        if m.size > MAX_JSON_BYTES {
            return Err(self.e.err(Cause::TooLarge(name.to_string())));
        }
        let mut data = vec![0u8; m.size as usize];
        self.file
            .read_exact_at(&mut data, m.offset)
            .map_err(|err| self.e.io(&self.path, err))?;
        Ok(data)
    }
}
