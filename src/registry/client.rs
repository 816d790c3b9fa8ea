//! One registry host over the OCI distribution API (v2), with `ureq`.
//!
//! - Scheme: plain HTTP for `localhost`, `127.0.0.1` and `::1`; otherwise HTTPS, and with
//!   `tls_verify` off HTTPS without verification falling back to HTTP (podman's rule for
//!   insecure registries). The first request (`GET /v2/`) decides, once.
//! - Every call is retried with backoff on connection errors, 5xx and 429; a `401` is
//!   answered once from its challenge (a token for the scopes, or basic credentials), and
//!   tokens are cached per scope set and sent up front afterwards.
//! - Redirects (registries send blob GETs to a CDN) are followed here, not by ureq, so that
//!   a `Range` header survives them and `Authorization` is never sent to another host.
//! - Blobs stream through [`BlobReader`], which resumes a cut transfer with `Range:
//!   bytes=N-`; small documents are read whole (size-capped) and checked against their
//!   digest.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use ureq::http;

mod blob;
mod upload;

pub use blob::{BlobReader, Hashing};
pub use upload::{BlobData, UPLOAD_CHUNK, Upload};

use super::RegistryError;
use super::auth::{Challenge, Credentials};
use super::reference::RegistryRef;
use crate::image::oci::{self, DocKind, DocShape, Index, Manifest};
use crate::image::platform::{self, Platform};
use crate::layer::blob::Digest;

/// The manifest types we ask for, best first.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// How often a failing call (or a cut blob transfer without progress) is tried again.
const RETRIES: u32 = 3;

/// How the client connects and who it is.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `--creds USER:PASS`; without them the auth files are looked up.
    pub creds: Option<Credentials>,
    /// `--tls-verify=false`: accept any certificate, and plain HTTP.
    pub tls_verify: bool,
    /// Connect timeout, and how long a read may stall.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            creds: None,
            tls_verify: true,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A client for one registry host; `Send + Sync`, share it between threads.
pub struct Client {
    /// The host as references name it (`docker.io`), for messages and the auth files.
    name: String,
    /// The host the API is served from.
    host: String,
    agent: ureq::Agent,
    creds: Option<Credentials>,
    /// Plain HTTP only (loopback registries).
    loopback: bool,
    tls_verify: bool,
    /// `http` or `https` once decided.
    scheme: Mutex<Option<&'static str>>,
    auth: Mutex<AuthState>,
}

#[derive(Default)]
struct AuthState {
    /// The last challenge seen: how to get a token (or that basic auth is wanted).
    challenge: Option<Challenge>,
    /// Bearer tokens by the space-joined, sorted scopes they were granted for.
    tokens: HashMap<String, String>,
}

/// An image as the registry describes it: the manifest chosen (for the platform, from an
/// index), its config, and its layers, bottom first.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The digest of the manifest (what the store keeps it under).
    pub manifest_digest: Digest,
    pub manifest_raw: Vec<u8>,
    pub manifest_media_type: String,
    pub manifest: Manifest,
    /// The index the manifest was chosen from, when the reference named one.
    pub index_digest: Option<Digest>,
    pub config_digest: Digest,
    pub config_raw: Vec<u8>,
    /// Bottom layer first, as the manifest lists them.
    pub layers: Vec<oci::Descriptor>,
}

/// One request, replayable for retries.
struct Call<'a> {
    method: http::Method,
    /// An absolute URL, or a path on the registry.
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Option<&'a [u8]>,
    /// The scopes a token must grant (`repository:NAME:pull`).
    scopes: Vec<String>,
    /// For messages: what is being asked for.
    what: String,
}

impl Client {
    /// A client for the registry of `reference_host` (as a reference names it).
    pub fn new(reference_host: &str, options: &ClientOptions) -> Client {
        let probe = RegistryRef {
            host: reference_host.to_string(),
            repo: "x".into(),
            tag: None,
            digest: None,
        };
        let host = probe.api_host().to_string();
        let bare = host
            .rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host.as_str(), |(h, _)| h);
        let loopback = matches!(bare, "localhost" | "127.0.0.1" | "[::1]");
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(!options.tls_verify)
            .build();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(options.timeout))
            .timeout_per_read(Some(options.timeout))
            .timeout_recv_response(Some(options.timeout * 2))
            .tls_config(tls)
            .user_agent(concat!("unionmount/", env!("CARGO_PKG_VERSION")))
            .build();
        let creds = options
            .creds
            .clone()
            .or_else(|| super::auth::lookup(reference_host));
        Client {
            name: reference_host.to_string(),
            host,
            agent: ureq::Agent::new_with_config(config),
            creds,
            loopback,
            tls_verify: options.tls_verify,
            scheme: Mutex::new(None),
            auth: Mutex::new(AuthState::default()),
        }
    }

    /// The registry as references name it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `GET /v2/`: decides the scheme and learns the auth challenge. A registry that cannot
    /// be reached is an error here, before anything else is asked.
    pub fn ping(&self) -> Result<(), RegistryError> {
        self.base().map(|_| ())
    }

    /// `scheme://host`, deciding the scheme on first use.
    fn base(&self) -> Result<String, RegistryError> {
        let mut scheme = lock(&self.scheme);
        if let Some(s) = *scheme {
            return Ok(format!("{s}://{}", self.host));
        }
        let candidates: &[&'static str] = if self.loopback {
            &["http"]
        } else if self.tls_verify {
            &["https"]
        } else {
            &["https", "http"]
        };
        let mut last = String::new();
        for s in candidates {
            let url = format!("{s}://{}/v2/", self.host);
            match self.send_with_retries(&http::Method::GET, &url, &[], None) {
                Ok(resp) => {
                    if resp.status() == 401 {
                        self.note_challenge(&resp);
                    }
                    *scheme = Some(s);
                    return Ok(format!("{s}://{}", self.host));
                }
                Err(e) => last = e,
            }
        }
        // A refused or unreachable host is that; anything else over HTTPS may be a registry
        // that speaks plain HTTP or has a self-signed certificate.
        let refused = ["refused", "not found", "timed out", "unreachable"]
            .iter()
            .any(|w| last.contains(w));
        if !self.loopback && self.tls_verify && !refused {
            last.push_str(" (over HTTPS; a registry without HTTPS or with a self-signed certificate needs --tls-verify=false)");
        }
        Err(RegistryError::Connect {
            registry: self.name.clone(),
            cause: last,
        })
    }

    /// Sends one request, retrying connection errors, 5xx and 429 with backoff. Returns the
    /// response, or the last error as text.
    fn send_with_retries(
        &self,
        method: &http::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<http::Response<ureq::Body>, String> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = http::Request::builder().method(method.clone()).uri(url);
            for (k, v) in headers {
                req = req.header(*k, v.as_str());
            }
            let result = match body {
                Some(b) => req.body(b).map(|r| self.agent.run(r)),
                None => req.body(()).map(|r| self.agent.run(r)),
            };
            let result = match result {
                Ok(sent) => sent,
                Err(e) => return Err(e.to_string()),
            };
            // Connections that fail or drop may work next time; a TLS or protocol error
            // (an HTTP server asked for HTTPS) will not.
            let retry = match &result {
                Ok(resp) => {
                    let s = resp.status().as_u16();
                    s >= 500 || s == 429
                }
                // rustls reports a handshake with a non-TLS server as InvalidData.
                Err(ureq::Error::Io(e)) => e.kind() != std::io::ErrorKind::InvalidData,
                Err(ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed) => true,
                Err(_) => false,
            };
            let result = result.map_err(describe);
            if !retry || attempt > RETRIES {
                return result;
            }
            log::debug!("{method} {url}: retrying after {result:?}");
            std::thread::sleep(delay);
            delay = (delay * 3).min(Duration::from_secs(5));
        }
    }

    fn note_challenge(&self, resp: &http::Response<ureq::Body>) {
        if let Some(c) = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(Challenge::parse)
        {
            lock(&self.auth).challenge = Some(c);
        }
    }

    /// The `Authorization` value to send up front for `scopes`, if we have one.
    fn auth_header(&self, scopes: &[String]) -> Option<String> {
        let state = lock(&self.auth);
        match &state.challenge {
            Some(Challenge::Bearer { .. }) => state
                .tokens
                .get(&scope_key(scopes))
                .map(|t| format!("Bearer {t}")),
            Some(Challenge::Basic) => self.creds.as_ref().map(Credentials::basic_header),
            None => None,
        }
    }

    /// Answers a challenge: fetches a token for `scopes` (and the challenge's own scope).
    fn authenticate(&self, scopes: &[String]) -> Result<(), RegistryError> {
        let challenge = lock(&self.auth).challenge.clone();
        match challenge {
            Some(Challenge::Basic) => {
                if self.creds.is_none() {
                    return Err(self.auth_error("authentication required (give --creds USER:PASS or log in: no credentials for it in the auth files)"));
                }
                Ok(())
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let mut all: Vec<String> = scopes.to_vec();
                if let Some(s) = scope {
                    all.extend(s.split(' ').map(str::to_string));
                }
                all.sort();
                all.dedup();
                let mut url = realm.clone();
                let mut sep = if realm.contains('?') { '&' } else { '?' };
                if let Some(service) = &service {
                    url.push_str(&format!("{sep}service={}", encode(service)));
                    sep = '&';
                }
                for s in &all {
                    url.push_str(&format!("{sep}scope={}", encode(s)));
                    sep = '&';
                }
                let mut headers = Vec::new();
                if let Some(c) = &self.creds {
                    headers.push(("authorization", c.basic_header()));
                }
                let mut resp = self
                    .send_with_retries(&http::Method::GET, &url, &headers, None)
                    .map_err(|cause| RegistryError::Connect {
                        registry: format!("{} (token service {realm})", self.name),
                        cause,
                    })?;
                let status = resp.status().as_u16();
                if status == 401 || status == 403 {
                    return Err(self.auth_error(&format!(
                        "authentication refused by the token service {realm} (HTTP {status}{})",
                        if self.creds.is_some() {
                            ": check the credentials"
                        } else {
                            ": no credentials given"
                        }
                    )));
                }
                if !(200..300).contains(&status) {
                    return Err(RegistryError::Status {
                        registry: self.name.clone(),
                        what: format!("token service {realm}"),
                        status,
                        detail: String::new(),
                    });
                }
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_vec()
                    .map_err(|e| self.protocol(format!("token service {realm}: {e}")))?;
                let doc: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| self.protocol(format!("token service {realm}: {e}")))?;
                let token = doc
                    .get("token")
                    .or_else(|| doc.get("access_token"))
                    .and_then(|t| t.as_str())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        self.protocol(format!("token service {realm}: no token in the answer"))
                    })?;
                let mut state = lock(&self.auth);
                state.tokens.insert(scope_key(scopes), token.to_string());
                Ok(())
            }
            None => Err(self.auth_error(
                "authentication required, and the registry says not how (no usable WWW-Authenticate)",
            )),
        }
    }

    fn auth_error(&self, cause: &str) -> RegistryError {
        RegistryError::Auth {
            registry: self.name.clone(),
            cause: cause.to_string(),
        }
    }

    fn protocol(&self, cause: String) -> RegistryError {
        RegistryError::Protocol {
            registry: self.name.clone(),
            cause,
        }
    }

    /// Makes a call: auth, retries and redirects. Any status comes back; callers decide.
    fn call(&self, call: &Call) -> Result<http::Response<ureq::Body>, RegistryError> {
        let base = self.base()?;
        let mut url = if call.url.starts_with('/') {
            format!("{base}{}", call.url)
        } else {
            call.url.clone()
        };
        let mut authed = false;
        let mut redirects = 0;
        loop {
            let same_host = host_of(&url) == Some(self.host.as_str());
            let mut headers: Vec<(&str, String)> =
                call.headers.iter().map(|(k, v)| (*k, v.clone())).collect();
            if same_host && let Some(a) = self.auth_header(&call.scopes) {
                headers.push(("authorization", a));
            }
            let resp = self
                .send_with_retries(&call.method, &url, &headers, call.body)
                .map_err(|cause| RegistryError::Connect {
                    registry: self.name.clone(),
                    cause,
                })?;
            let status = resp.status().as_u16();
            if status == 401 && same_host {
                if authed {
                    let detail = error_detail(resp);
                    let cause = if self.creds.is_some() {
                        format!("{}: authentication refused ({detail})", call.what)
                    } else {
                        format!(
                            "{}: authentication required ({detail}; give --creds USER:PASS)",
                            call.what
                        )
                    };
                    return Err(self.auth_error(&cause));
                }
                self.note_challenge(&resp);
                self.authenticate(&call.scopes)?;
                authed = true;
                continue;
            }
            let redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
            if redirect
                && matches!(call.method, http::Method::GET | http::Method::HEAD)
                && let Some(location) = resp.headers().get("location").and_then(|v| v.to_str().ok())
            {
                redirects += 1;
                if redirects > 5 {
                    return Err(self.protocol(format!("{}: too many redirects", call.what)));
                }
                url = join_url(&url, location);
                continue;
            }
            return Ok(resp);
        }
    }

    /// A status error for `what`, with the registry's own error code and message.
    fn status_error(&self, what: &str, resp: http::Response<ureq::Body>) -> RegistryError {
        let status = resp.status().as_u16();
        RegistryError::Status {
            registry: self.name.clone(),
            what: what.to_string(),
            status,
            detail: error_detail(resp),
        }
    }

    /// `GET /v2/REPO/manifests/REF`: the raw document, its media type and its digest
    /// (computed; checked against `Docker-Content-Digest` and against REF when it is one).
    pub fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(String, Vec<u8>, Digest), RegistryError> {
        let what = format!("manifest {repo}:{reference}");
        let mut resp = self.call(&Call {
            method: http::Method::GET,
            url: format!("/v2/{repo}/manifests/{reference}"),
            headers: vec![("accept", ACCEPT_MANIFESTS.to_string())],
            body: None,
            scopes: vec![pull_scope(repo)],
            what: what.clone(),
        })?;
        if !resp.status().is_success() {
            return Err(self.status_error(&what, resp));
        }
        let header_type = header(&resp, "content-type");
        let header_digest = header(&resp, "docker-content-digest");
        let raw = resp
            .body_mut()
            .with_config()
            .limit(crate::image::MAX_JSON_BYTES)
            .read_to_vec()
            .map_err(|e| self.protocol(format!("{what}: {e}")))?;
        let digest = crate::image::sha256_of(&raw);
        let expected = Digest::parse(reference)
            .ok()
            .or_else(|| header_digest.and_then(|d| Digest::parse(&d).ok()));
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(RegistryError::Digest {
                what: format!("registry {}: {what}", self.name),
                expected,
                actual: digest.to_string(),
            });
        }
        let shape: DocShape = serde_json::from_slice(&raw)
            .map_err(|e| self.protocol(format!("{what}: invalid JSON: {e}")))?;
        let media_type = match shape.implied_media_type() {
            "" => header_type
                .map(|t| t.split(';').next().unwrap_or_default().trim().to_string())
                .unwrap_or_default(),
            t => t.to_string(),
        };
        Ok((media_type, raw, digest))
    }

    /// Resolves a reference to one image manifest, its config and layers, choosing from an
    /// index by `platform`.
    pub fn resolve(
        &self,
        reference: &RegistryRef,
        platform: &Platform,
    ) -> Result<Resolved, RegistryError> {
        let repo = &reference.repo;
        let (mut media_type, mut raw, mut digest) =
            self.get_manifest(repo, &reference.manifest_ref())?;
        let mut index_digest = None;
        for _ in 0..4 {
            let kind = oci::doc_kind(&media_type)
                .map_err(|m| self.protocol(format!("manifest {repo}@{digest}: {m}")))?;
            match kind {
                DocKind::Manifest => {
                    let manifest: Manifest = serde_json::from_slice(&raw).map_err(|e| {
                        self.protocol(format!("manifest {repo}@{digest}: invalid JSON: {e}"))
                    })?;
                    if manifest.schema_version != 2 {
                        return Err(self.protocol(format!(
                            "manifest {repo}@{digest}: schemaVersion {} is not supported",
                            manifest.schema_version
                        )));
                    }
                    if !oci::is_image_config(&manifest.config.media_type) {
                        return Err(self.protocol(format!(
                            "manifest {repo}@{digest}: config media type {:?} is not an image \
                             config (is this an artifact?)",
                            manifest.config.media_type
                        )));
                    }
                    let config_digest = manifest
                        .config
                        .digest()
                        .map_err(|m| self.protocol(format!("manifest {repo}@{digest}: {m}")))?;
                    let config_raw = self.get_small_blob(repo, &manifest.config, "config")?;
                    return Ok(Resolved {
                        manifest_digest: digest,
                        manifest_raw: raw,
                        manifest_media_type: media_type,
                        layers: manifest.layers.clone(),
                        manifest,
                        index_digest,
                        config_digest,
                        config_raw,
                    });
                }
                DocKind::Index => {
                    let index: Index = serde_json::from_slice(&raw).map_err(|e| {
                        self.protocol(format!("index {repo}@{digest}: invalid JSON: {e}"))
                    })?;
                    let chosen = platform::best_fit(&index.manifests, platform).ok_or_else(|| {
                        self.protocol(format!(
                            "{reference}: no manifest for platform {platform} (have: {}; choose with --platform)",
                            index
                                .manifests
                                .iter()
                                .map(|d| platform::describe(d.platform.as_ref()))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
                    let want = chosen
                        .digest()
                        .map_err(|m| self.protocol(format!("index {repo}@{digest}: {m}")))?;
                    index_digest.get_or_insert(digest);
                    (media_type, raw, digest) = self.get_manifest(repo, want.as_str())?;
                    if !chosen.media_type.is_empty() {
                        media_type = chosen.media_type.clone();
                    }
                }
            }
        }
        Err(self.protocol(format!("{reference}: image indexes nest too deep")))
    }

    /// A small blob (config) read whole and checked against its descriptor.
    pub fn get_small_blob(
        &self,
        repo: &str,
        desc: &oci::Descriptor,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let digest = desc
            .digest()
            .map_err(|m| self.protocol(format!("{what}: {m}")))?;
        let size = desc
            .size()
            .map_err(|m| self.protocol(format!("{what}: {m}")))?;
        if size > crate::image::MAX_JSON_BYTES {
            return Err(self.protocol(format!("{what} {digest}: {size} bytes is too large")));
        }
        let mut data = Vec::new();
        self.blob_reader(repo, &digest, 0)?
            .take(size + 1)
            .read_to_end(&mut data)
            .map_err(|e| self.protocol(format!("{what} {digest}: {e}")))?;
        let actual = crate::image::sha256_of(&data);
        if actual != digest || data.len() as u64 != size {
            return Err(RegistryError::Digest {
                what: format!("registry {}: {repo}: {what}", self.name),
                expected: digest,
                actual: format!("{actual} ({} bytes)", data.len()),
            });
        }
        Ok(data)
    }

    /// `HEAD /v2/REPO/blobs/DIGEST`: the blob's size, or `None` if the repository does not
    /// have it.
    pub fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let what = format!("blob {repo}@{digest}");
        let resp = self.call(&Call {
            method: http::Method::HEAD,
            url: format!("/v2/{repo}/blobs/{digest}"),
            headers: Vec::new(),
            body: None,
            scopes: vec![pull_scope(repo)],
            what: what.clone(),
        })?;
        match resp.status().as_u16() {
            404 => Ok(None),
            s if (200..300).contains(&s) => Ok(Some(
                header(&resp, "content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0),
            )),
            _ => Err(self.status_error(&what, resp)),
        }
    }

    /// `GET /v2/REPO/referrers/DIGEST` (distribution spec 1.1): the index of artifacts that
    /// refer to the manifest, raw; `None` where the registry has no referrers API (404).
    pub fn get_referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let what = format!("referrers of {repo}@{digest}");
        let mut resp = self.call(&Call {
            method: http::Method::GET,
            url: format!("/v2/{repo}/referrers/{digest}"),
            headers: vec![("accept", oci::OCI_INDEX.to_string())],
            body: None,
            scopes: vec![pull_scope(repo)],
            what: what.clone(),
        })?;
        match resp.status().as_u16() {
            404 => Ok(None),
            s if (200..300).contains(&s) => resp
                .body_mut()
                .with_config()
                .limit(crate::image::MAX_JSON_BYTES)
                .read_to_vec()
                .map(Some)
                .map_err(|e| self.protocol(format!("{what}: {e}"))),
            _ => Err(self.status_error(&what, resp)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn header(resp: &http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The registry's own error (`{"errors":[{"code":..,"message":..}]}`), else the reason
/// phrase.
fn error_detail(mut resp: http::Response<ureq::Body>) -> String {
    let status = resp.status();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec()
        .unwrap_or_default();
    let from_json = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|doc| {
            let errors = doc.get("errors")?.as_array()?;
            let parts: Vec<String> = errors
                .iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{code}: {msg}")
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        });
    from_json.unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string())
}

/// A one-line description of a transport error.
fn describe(e: ureq::Error) -> String {
    let text = match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        other => other.to_string(),
    };
    text.lines().next().unwrap_or_default().to_string()
}

fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

fn scope_key(scopes: &[String]) -> String {
    let mut s = scopes.to_vec();
    s.sort();
    s.join(" ")
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `host[:port]` of an absolute URL.
fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// Resolves `location` (absolute, or a path) against `base`.
fn join_url(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let origin = match base.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            format!("{scheme}://{host}")
        }
        None => String::new(),
    };
    if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        let dir = base.rsplit_once('/').map_or(base, |(d, _)| d);
        format!("{dir}/{location}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(host_of("http://127.0.0.1:5000/v2/"), Some("127.0.0.1:5000"));
        assert_eq!(host_of("https://cdn.example/x?y"), Some("cdn.example"));
        assert_eq!(
            join_url(
                "http://h:1/v2/a/blobs/uploads/",
                "/v2/a/blobs/uploads/u?x=1"
            ),
            "http://h:1/v2/a/blobs/uploads/u?x=1"
        );
        assert_eq!(join_url("http://h/v2/x", "https://o/y"), "https://o/y");
        assert_eq!(join_url("http://h/v2/x", "y"), "http://h/v2/y");
        assert_eq!(encode("sha256:ab/c d"), "sha256%3Aab%2Fc%20d");
    }

    #[test]
    fn client_is_shareable() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Client>();
    }
}
