//! Registry references: `[docker://]HOST[:PORT]/NAME[:TAG|@DIGEST]`, normalised as docker
//! does (distribution's reference grammar): no host means `docker.io`, a one-part name there
//! lives under `library/`, and no tag or digest means `latest`.
//!
//! Without `docker://`, a word is a registry reference only when its first `/`-separated part
//! looks like a host (it holds a `.` or a `:`, or is `localhost`), docker's own rule for telling
//! `example.com/app` from `user/app`; anything else stays a store name.

use std::fmt;

use crate::layer::blob::Digest;

/// Docker Hub as references name it, and the host its API is served from.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed registry reference. `Display` gives the full normalised form
/// (`HOST/NAME:TAG` or `HOST/NAME@DIGEST`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRef {
    /// `HOST[:PORT]` as written (lowercased), `docker.io` for Docker Hub.
    pub host: String,
    /// The repository, `library/busybox`, `team/app`.
    pub repo: String,
    /// The tag; `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repo)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl RegistryRef {
    /// Parses a reference with or without `docker://`; the error names the reference.
    pub fn parse(text: &str) -> Result<RegistryRef, String> {
        let fail = |cause: &str| format!("image reference {text:?}: {cause}");
        let rest = text.strip_prefix("docker://").unwrap_or(text);
        if rest.is_empty() {
            return Err(fail("no image name"));
        }
        let (rest, digest) = match rest.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d).map_err(|e| fail(&e))?)),
            None => (rest, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(fail(&format!(
                "invalid tag {tag:?} (letters, digits, _ . -, up to 128, not starting with . or -)"
            )));
        }
        let (host, path) = match name.split_once('/') {
            Some((first, path)) if is_host(first) => (first.to_ascii_lowercase(), path),
            _ => (DOCKER_HUB.to_string(), name),
        };
        if host.is_empty() || !valid_host(&host) {
            return Err(fail(&format!("invalid registry host {host:?}")));
        }
        let host = if host == "index.docker.io" || host == DOCKER_HUB_API {
            DOCKER_HUB.to_string()
        } else {
            host
        };
        if path.is_empty() || !path.split('/').all(valid_component) {
            return Err(fail(&format!(
                "invalid repository name {path:?} (lowercase letters, digits and . _ __ - \
                 separators, /-separated parts)"
            )));
        }
        let repo = if host == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(RegistryRef {
            host,
            repo,
            tag,
            digest,
        })
    }

    /// Whether `text` names a registry image: `docker://...`, or a name whose first part is
    /// a host (see the module docs).
    pub fn is_registry(text: &str) -> bool {
        if text.starts_with("docker://") {
            return true;
        }
        match text.split_once('/') {
            Some((first, _)) => is_host(first) && !first.contains('\\'),
            None => false,
        }
    }

    /// The host the distribution API is served from.
    pub fn api_host(&self) -> &str {
        if self.host == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.host
        }
    }

    /// What goes after `/manifests/`: the digest when there is one, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// The store tag for this reference in docker's short form (`busybox:1.36`,
    /// `localhost:5000/app:latest`); `None` for a reference by digest alone.
    pub fn store_tag(&self) -> Option<String> {
        let tag = self.tag.as_ref()?;
        let name = self.short_name();
        Some(format!("{name}:{tag}"))
    }

    /// The repository in docker's short form (`busybox`, `user/app`, `localhost:5000/app`).
    pub fn short_name(&self) -> String {
        if self.host == DOCKER_HUB {
            self.repo
                .strip_prefix("library/")
                .unwrap_or(&self.repo)
                .to_string()
        } else {
            format!("{}/{}", self.host, self.repo)
        }
    }

    /// The full repository name (`docker.io/library/busybox`), as `push` and `pull` print it.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.host, self.repo)
    }
}

/// docker's test for a registry host in the first part of a name.
fn is_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// `host[:port]` or `[v6addr][:port]`.
fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        (None, after.strip_prefix(':'))
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    let name_ok = name.is_none_or(|n| {
        !n.is_empty()
            && n.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    name_ok && port_ok
}

/// A path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RegistryRef {
        RegistryRef::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn docker_normalisation() {
        let r = parse("busybox");
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.store_tag().unwrap(), "busybox:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = parse("docker://user/app:1.0");
        assert_eq!(r.to_string(), "docker.io/user/app:1.0");
        assert_eq!(r.store_tag().unwrap(), "user/app:1.0");
        let r = parse("localhost:5000/team/app");
        assert_eq!(
            (r.host.as_str(), r.repo.as_str()),
            ("localhost:5000", "team/app")
        );
        assert_eq!(r.store_tag().unwrap(), "localhost:5000/team/app:latest");
        let r = parse("docker://127.0.0.1:5000/app:v2");
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(r.manifest_ref(), "v2");
        let r = parse("index.docker.io/library/alpine:3");
        assert_eq!(r.to_string(), "docker.io/library/alpine:3");
        let r = parse("[::1]:5000/app");
        assert_eq!(r.host, "[::1]:5000");
    }

    #[test]
    fn digests() {
        let hex = "ab".repeat(32);
        let r = parse(&format!("localhost/app@sha256:{hex}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_ref(), format!("sha256:{hex}"));
        assert_eq!(r.store_tag(), None);
        let r = parse(&format!("localhost/app:1@sha256:{hex}"));
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.manifest_ref(), format!("sha256:{hex}"));
    }

    #[test]
    fn registry_or_store_name() {
        for yes in [
            "docker://busybox",
            "localhost/a",
            "example.com/a:1",
            "host:5000/a",
        ] {
            assert!(RegistryRef::is_registry(yes), "{yes}");
        }
        for no in [
            "busybox",
            "user/app",
            "busybox:1.36",
            "sha256:abc",
            "oci:dir",
        ] {
            assert!(!RegistryRef::is_registry(no), "{no}");
        }
    }

    #[test]
    fn errors_name_the_reference() {
        for (bad, cause) in [
            ("docker://", "no image name"),
            ("localhost/UPPER", "invalid repository name"),
            ("localhost/a:", "invalid tag"),
            ("localhost/a:-x", "invalid tag"),
            ("localhost/a@sha256:00", "malformed digest"),
            ("host:notaport/a", "invalid registry host"),
            ("localhost/a..b", "invalid repository name"),
            ("localhost//a", "invalid repository name"),
        ] {
            let e = RegistryRef::parse(bad).unwrap_err();
            assert!(
                e.contains(&format!("{bad:?}")) && e.contains(cause),
                "{bad}: {e}"
            );
        }
    }
}
