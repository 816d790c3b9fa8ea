//! Image references as the user writes them: a transport and what it names.
//!
//! - `oci:DIR[:TAG]`, `oci:DIR@sha256:HEX` (or `oci:DIR:@sha256:HEX`), `oci:DIR:@N`: an OCI
//!   image layout directory and one image in it (a tag, i.e. an
//!   `org.opencontainers.image.ref.name` annotation in `index.json`; a manifest digest; or the
//!   N-th entry of `index.json`).
//! - `docker-archive:FILE[:NAME[:TAG]]`, `docker-archive:FILE:@N`: a `docker save` archive and
//!   one image in it (by one of its `RepoTags`, or the N-th entry of its `manifest.json`).
//!
//! DIR and FILE end at the first `:`, as skopeo (containers/image) splits them, so that a tag
//! may itself hold colons (`oci:dir:example.com/app:1.0` names the tag `example.com/app:1.0`).
//! A colon inside DIR or FILE is written `\:` (and a backslash before a colon `\\`); skopeo has
//! no escape and refuses such paths. Without a TAG, an OCI layout gives its `latest` tag, or its
//! only image; a docker archive its only image.
//!
//! `docker://` (registries) is pulled into the store, or mounted lazily, by `crate::registry`;
//! here it is refused with a hint to pull first or mount with `--lazy`.

use std::fmt;
use std::path::PathBuf;

use crate::layer::blob::Digest;

/// A parsed image reference. `Display` gives the reference as the user wrote it, which is how
/// errors and layer names refer to the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub location: Location,
    text: String,
}

/// Where the image is, and which one of the images there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Oci { dir: PathBuf, select: Select },
    DockerArchive { file: PathBuf, select: Select },
}

/// Which image of a layout or archive is meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Select {
    /// Nothing given: the `latest` tag, or the only image.
    Default,
    /// An OCI ref name, or for an archive a normalised `NAME:TAG`.
    Tag(String),
    /// A manifest (or index) digest (OCI layouts only).
    Digest(Digest),
    /// The N-th image (`@N`, from 0) as skopeo numbers them.
    Index(usize),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Reference {
    /// Parses a reference; the error names the reference and the cause.
    pub fn parse(text: &str) -> Result<Reference, String> {
        let fail = |cause: &str| format!("image reference {text:?}: {cause}");
        let location = if let Some(rest) = text.strip_prefix("oci:") {
            let (dir, select) = split_location(rest).map_err(|e| fail(&e))?;
            let select = match select {
                None => Select::Default,
                Some(s) => parse_oci_select(&s).map_err(|e| fail(&e))?,
            };
            Location::Oci { dir, select }
        } else if let Some(rest) = text.strip_prefix("docker-archive:") {
            let (file, select) = split_location(rest).map_err(|e| fail(&e))?;
            let select = match select {
                None => Select::Default,
                Some(s) => parse_archive_select(&s).map_err(|e| fail(&e))?,
            };
            Location::DockerArchive { file, select }
        } else if text.starts_with("docker://") {
            return Err(fail(
                "a registry image is read here only with `mount --lazy`: \
                 `unionmount pull` the image first, or give --lazy",
            ));
        } else if let Some((transport, _)) = text.split_once(':').filter(|(t, _)| {
            !t.is_empty()
                && !t.contains('/')
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }) {
            return Err(fail(&format!(
                "unknown transport {transport:?} (use oci:DIR[:TAG] or docker-archive:FILE[:NAME:TAG])"
            )));
        } else {
            return Err(fail(
                "no transport (use oci:DIR[:TAG] or docker-archive:FILE[:NAME:TAG])",
            ));
        };
        Ok(Reference {
            location,
            text: text.to_string(),
        })
    }
}

/// Splits `PATH[:REST]` at the first unescaped colon, unescaping `\:` and `\\` in PATH. A
/// `PATH@sha256:HEX` (the digest form without a separating colon) is recognised too.
fn split_location(s: &str) -> Result<(PathBuf, Option<String>), String> {
    let mut path = String::new();
    let mut chars = s.char_indices().peekable();
    let mut rest = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some((_, ':' | '\\'))) => {
                if let Some((_, n)) = chars.next() {
                    path.push(n);
                }
            }
            ':' => {
                rest = Some(&s[i + 1..]);
                break;
            }
            c => path.push(c),
        }
    }
    let mut rest = rest.map(str::to_string);
    if let Some(stem) = path.strip_suffix("@sha256") {
        // `DIR@sha256:HEX`: the colon belonged to the digest.
        rest = Some(format!("@sha256:{}", rest.unwrap_or_default()));
        path = stem.to_string();
    }
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    Ok((PathBuf::from(path), rest))
}

/// `@N` (an index), `@sha256:HEX` (a digest) or an OCI ref name.
fn parse_oci_select(s: &str) -> Result<Select, String> {
    if let Some(at) = s.strip_prefix('@') {
        if at.contains(':') {
            return Digest::parse(at).map(Select::Digest);
        }
        return parse_index(at);
    }
    if s.is_empty() {
        return Ok(Select::Default);
    }
    if !is_oci_ref_name(s) {
        return Err(format!(
            "invalid tag {s:?} (an OCI ref name: letters, digits, and single separators - . _ : @ + or --, in /-separated parts)"
        ));
    }
    Ok(Select::Tag(s.to_string()))
}

fn parse_index(s: &str) -> Result<Select, String> {
    s.parse::<usize>()
        .map(Select::Index)
        .map_err(|_| format!("invalid image index @{s} (want a number from 0)"))
}

/// The `org.opencontainers.image.ref.name` grammar (image-spec annotations.md):
/// `component ("/" component)*`, `component ::= alphanum (separator alphanum)*`,
/// `separator ::= [-._:@+] | "--"`.
pub fn is_oci_ref_name(s: &str) -> bool {
    s.split('/').all(|component| {
        let b = component.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let sep_len = if b[i] == b'-' && b.get(i + 1) == Some(&b'-') {
                2
            } else if b"-._:@+".contains(&b[i]) {
                1
            } else {
                return false;
            };
            i += sep_len;
            if !b.get(i).is_some_and(u8::is_ascii_alphanumeric) {
                return false;
            }
        }
        true
    })
}

/// `@N`, or `NAME[:TAG]` normalised as docker does for `RepoTags` comparisons.
fn parse_archive_select(s: &str) -> Result<Select, String> {
    if let Some(at) = s.strip_prefix('@') {
        return parse_index(at);
    }
    if s.is_empty() {
        return Ok(Select::Default);
    }
    if s.contains('@') {
        return Err(format!(
            "{s:?}: a docker-archive image is named NAME[:TAG], not by digest"
        ));
    }
    normalize_repo_tag(s)
        .map(Select::Tag)
        .ok_or_else(|| format!("invalid image name {s:?} (want NAME[:TAG])"))
}

/// The short ("familiar") `NAME:TAG` form docker writes in `RepoTags`: `docker.io/library/`
/// and `docker.io/` are dropped, and a missing tag is `latest`. `None` if `s` is not a
/// plausible name.
pub fn normalize_repo_tag(s: &str) -> Option<String> {
    let last_slash = s.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match s[last_slash..].rfind(':') {
        Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
        None => (s, "latest"),
    };
    let valid_tag = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !tag.starts_with(['.', '-']);
    let valid_name = !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-:".contains(&b))
        });
    if !valid_tag || !valid_name {
        return None;
    }
    let name = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name);
    Some(format!("{name}:{tag}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oci(text: &str) -> (PathBuf, Select) {
        match Reference::parse(text).unwrap().location {
            Location::Oci { dir, select } => (dir, select),
            other => panic!("{text}: {other:?}"),
        }
    }

    fn archive(text: &str) -> (PathBuf, Select) {
        match Reference::parse(text).unwrap().location {
            Location::DockerArchive { file, select } => (file, select),
            other => panic!("{text}: {other:?}"),
        }
    }

    fn err(text: &str) -> String {
        Reference::parse(text).unwrap_err()
    }

    #[test]
    fn oci_references() {
        let hex = "ab".repeat(32);
        let digest = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(oci("oci:/a/b"), ("/a/b".into(), Select::Default));
        assert_eq!(oci("oci:dir:"), ("dir".into(), Select::Default));
        assert_eq!(
            oci("oci:dir:v1.0"),
            ("dir".into(), Select::Tag("v1.0".into()))
        );
        assert_eq!(
            oci("oci:dir:example.com/app:1.0"),
            ("dir".into(), Select::Tag("example.com/app:1.0".into()))
        );
        assert_eq!(
            oci(&format!("oci:dir@sha256:{hex}")),
            ("dir".into(), Select::Digest(digest.clone()))
        );
        assert_eq!(
            oci(&format!("oci:dir:@sha256:{hex}")),
            ("dir".into(), Select::Digest(digest))
        );
        assert_eq!(oci("oci:dir:@2"), ("dir".into(), Select::Index(2)));
        assert_eq!(oci(r"oci:a\:b:t"), ("a:b".into(), Select::Tag("t".into())));
        assert_eq!(oci(r"oci:a\\:t"), (r"a\".into(), Select::Tag("t".into())));
        assert_eq!(oci(r"oci:a\b"), (r"a\b".into(), Select::Default));
        assert_eq!(
            Reference::parse("oci:dir:t").unwrap().to_string(),
            "oci:dir:t"
        );
    }

    #[test]
    fn archive_references() {
        assert_eq!(
            archive("docker-archive:x.tar"),
            ("x.tar".into(), Select::Default)
        );
        assert_eq!(
            archive("docker-archive:x.tar:busybox"),
            ("x.tar".into(), Select::Tag("busybox:latest".into()))
        );
        assert_eq!(
            archive("docker-archive:x.tar:docker.io/library/busybox:1.36"),
            ("x.tar".into(), Select::Tag("busybox:1.36".into()))
        );
        assert_eq!(
            archive("docker-archive:x.tar:localhost:5000/app"),
            (
                "x.tar".into(),
                Select::Tag("localhost:5000/app:latest".into())
            )
        );
        assert_eq!(
            archive("docker-archive:x.tar:@1"),
            ("x.tar".into(), Select::Index(1))
        );
    }

    #[test]
    fn bad_references_name_the_reference_and_the_cause() {
        let e = err("docker://busybox");
        assert!(
            e.contains("docker://busybox") && e.contains("`unionmount pull` the image first"),
            "{e}"
        );
        assert!(err("busybox").contains("no transport"));
        assert!(err("/some/dir").contains("no transport"));
        assert!(err("containers-storage:x").contains("unknown transport \"containers-storage\""));
        assert!(err("oci:").contains("the path is empty"));
        assert!(err("oci::tag").contains("the path is empty"));
        assert!(err("oci:dir:bad tag").contains("invalid tag"));
        assert!(err("oci:dir:-x").contains("invalid tag"));
        assert!(err("oci:dir:a..b").contains("invalid tag"));
        assert!(err("oci:dir@sha256:abc").contains("malformed digest"));
        assert!(err("oci:dir:@sha512:abc").contains("unsupported digest"));
        assert!(err("oci:dir:@-1").contains("invalid image index"));
        assert!(err("oci:dir:@x").contains("invalid image index"));
        assert!(err("docker-archive:x.tar:a@sha256:00").contains("not by digest"));
        assert!(err("docker-archive:x.tar:UPPER case").contains("invalid image name"));
        assert!(err("docker-archive:x.tar:name:").contains("invalid image name"));
    }

    #[test]
    fn ref_name_grammar() {
        for ok in ["latest", "v1.0", "a--b", "example.com/app:1.0", "a@b+c"] {
            assert!(is_oci_ref_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a---b", "a//b", "a b", "a..b", "/a"] {
            assert!(!is_oci_ref_name(bad), "{bad}");
        }
    }
}
