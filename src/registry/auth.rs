//! Who we are to a registry: credentials (from `--creds`, else the podman and docker auth
//! files), and the challenges a registry answers `401` with (`WWW-Authenticate: Bearer
//! realm=..,service=..,scope=..` for a token service, or `Basic realm=..`).
//!
//! The token exchange itself (a GET of the realm with the service and scopes, with basic
//! credentials when we have them) is made by the client, which caches one token per scope.

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a password, also not in a debug dump.
        write!(f, "Credentials({:?}, ***)", self.user)
    }
}

impl Credentials {
    /// `USER:PASS` as `--creds` takes it (the password may hold colons).
    pub fn parse(text: &str) -> Result<Credentials, String> {
        match text.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Credentials {
                user: user.to_string(),
                password: password.to_string(),
            }),
            _ => Err("--creds: want USER:PASSWORD".into()),
        }
    }

    /// The `Authorization` header value for basic auth.
    pub fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// The auth files looked at, first match wins: `$REGISTRY_AUTH_FILE`,
/// `$XDG_RUNTIME_DIR/containers/auth.json` (podman), `~/.docker/config.json` (docker;
/// `$DOCKER_CONFIG/config.json` when set).
pub fn auth_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|f| !f.is_empty()) {
        files.push(PathBuf::from(f));
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        files.push(Path::new(&dir).join("containers/auth.json"));
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        files.push(Path::new(&dir).join("config.json"));
    } else if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        files.push(Path::new(&home).join(".docker/config.json"));
    }
    files
}

/// The credentials the auth files hold for `host` (a reference's host, `docker.io` for
/// Docker Hub), or `None`. Unreadable or malformed files are skipped: a broken docker config
/// must not stop a pull that needs no login.
pub fn lookup(host: &str) -> Option<Credentials> {
    auth_files()
        .iter()
        .find_map(|file| lookup_in(&std::fs::read(file).ok()?, host))
}

/// The entry for `host` in one auth file's `auths` map. Keys may be bare hosts or URLs
/// (`https://index.docker.io/v1/` is docker's key for Docker Hub).
pub fn lookup_in(data: &[u8], host: &str) -> Option<Credentials> {
    let doc: serde_json::Value = serde_json::from_slice(data).ok()?;
    let auths = doc.get("auths")?.as_object()?;
    let wanted = |key: &str| {
        let bare = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let bare = bare.split('/').next().unwrap_or(bare);
        bare == host
            || (host == super::reference::DOCKER_HUB
                && matches!(bare, "index.docker.io" | "registry-1.docker.io"))
    };
    let entry = auths
        .iter()
        .find(|(k, _)| k.as_str() == host)
        .or_else(|| auths.iter().find(|(k, _)| wanted(k)))?
        .1;
    let encoded = entry.get("auth")?.as_str()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Credentials::parse(&text).ok()
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    Basic,
}

impl Challenge {
    /// Parses the first challenge we can answer; `None` for other schemes.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => {
                let params = parse_params(params);
                let get = |k: &str| {
                    params
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.clone())
                };
                Some(Challenge::Bearer {
                    realm: get("realm")?,
                    service: get("service"),
                    scope: get("scope"),
                })
            }
            _ => None,
        }
    }
}

/// `k="v", k2=v2` (quoted values may hold commas and escaped quotes).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((key, value));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            }
        );
        let c = Challenge::parse("bearer realm=http://h/t").unwrap();
        assert!(matches!(c, Challenge::Bearer { service: None, .. }));
        assert_eq!(
            Challenge::parse(r#"Basic realm="r""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }

    #[test]
    fn auth_file_entries() {
        let enc = base64::engine::general_purpose::STANDARD.encode("me:se:cret");
        let doc = format!(
            r#"{{"auths":{{"localhost:5000":{{"auth":"{enc}"}},"https://index.docker.io/v1/":{{"auth":"{enc}"}}}}}}"#
        );
        let c = lookup_in(doc.as_bytes(), "localhost:5000").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("me", "se:cret"));
        assert!(lookup_in(doc.as_bytes(), "docker.io").is_some());
        assert!(lookup_in(doc.as_bytes(), "other:5000").is_none());
        assert!(lookup_in(b"not json", "localhost:5000").is_none());
        assert!(lookup_in(br#"{"auths":{"h":{"auth":"!!"}}}"#, "h").is_none());
    }

    #[test]
    fn creds_flag() {
        let c = Credentials::parse("u:p:q").unwrap();
        assert_eq!(c.password, "p:q");
        assert!(Credentials::parse("nopass").is_err());
        assert!(Credentials::parse(":p").is_err());
        assert_eq!(
            Credentials::parse("aladdin:opensesame")
                .unwrap()
                .basic_header(),
            "Basic YWxhZGRpbjpvcGVuc2VzYW1l"
        );
        assert!(!format!("{c:?}").contains("p:q"));
    }
}
