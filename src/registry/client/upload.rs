//! Uploads: a `HEAD` first, a cross-repository mount when offered, else one `PUT` for a
//! small blob or `PATCH` chunks then a closing `PUT` for a large one; and manifests.

use ureq::http;

use super::{Call, Client, encode, header, join_url, pull_scope, push_scope};
use crate::layer::blob::Digest;
use crate::registry::RegistryError;

/// Blobs up to this size are uploaded in one PUT; larger ones in PATCH chunks of this size.
pub const UPLOAD_CHUNK: u64 = 16 << 20;

/// A blob to upload: bytes in memory, or a file of the store.
#[derive(Clone, Copy, Debug)]
pub enum BlobData<'a> {
    Bytes(&'a [u8]),
    File(&'a std::path::Path, u64),
}

/// What became of a blob a push offered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upload {
    /// The repository had it already.
    Exists,
    /// Mounted from another repository of the registry.
    Mounted(String),
    Pushed,
}

impl Client {
    /// Starts an upload (`POST /v2/REPO/blobs/uploads/`), offering a cross-repository mount
    /// of `digest` from `from` when given. `Ok(None)` means the mount was made.
    fn start_upload(
        &self,
        repo: &str,
        mount: Option<(&Digest, &str)>,
    ) -> Result<Option<String>, RegistryError> {
        let mut url = format!("/v2/{repo}/blobs/uploads/");
        let mut scopes = vec![push_scope(repo)];
        if let Some((digest, from)) = mount {
            url.push_str(&format!("?mount={digest}&from={}", encode(from)));
            scopes.push(pull_scope(from));
        }
        let what = format!("upload to {repo}");
        let resp = self.call(&Call {
            method: http::Method::POST,
            url,
            headers: Vec::new(),
            body: Some(&[]),
            scopes,
            what: what.clone(),
        })?;
        match resp.status().as_u16() {
            201 if mount.is_some() => Ok(None),
            202 | 201 => header(&resp, "location")
                .map(|l| {
                    Some(join_url(
                        &format!("{}/", self.base().unwrap_or_default()),
                        &l,
                    ))
                })
                .ok_or_else(|| self.protocol(format!("{what}: no Location in the answer"))),
            _ => Err(self.status_error(&what, resp)),
        }
    }

    /// Pushes a blob unless the repository has it: a `HEAD` first, then a cross-repository
    /// mount from `mount_from` (another repository of this registry) when given, else an
    /// upload: one PUT up to [`UPLOAD_CHUNK`] bytes, PATCH chunks beyond.
    pub fn put_blob(
        &self,
        repo: &str,
        digest: &Digest,
        data: BlobData,
        mount_from: Option<&str>,
    ) -> Result<Upload, RegistryError> {
        if self.blob_size(repo, digest)?.is_some() {
            return Ok(Upload::Exists);
        }
        let mount = mount_from.filter(|from| *from != repo).map(|f| (digest, f));
        let Some(location) = self.start_upload(repo, mount)? else {
            return Ok(Upload::Mounted(mount_from.unwrap_or_default().to_string()));
        };
        let what = format!("blob {repo}@{digest}");
        let (size, mut file) = match data {
            BlobData::Bytes(b) => (b.len() as u64, None),
            BlobData::File(path, size) => (
                size,
                Some(
                    std::fs::File::open(path)
                        .map_err(|e| RegistryError::Io(path.display().to_string(), e))?,
                ),
            ),
        };
        let read_chunk = |file: &mut Option<std::fs::File>, off: u64, len: u64| match (file, data) {
            (Some(f), BlobData::File(path, _)) => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; len as usize];
                f.read_exact_at(&mut buf, off)
                    .map_err(|e| RegistryError::Io(path.display().to_string(), e))?;
                Ok(buf)
            }
            (_, BlobData::Bytes(b)) => Ok(b[off as usize..(off + len) as usize].to_vec()),
            _ => Err(RegistryError::Invalid("blob data".into())),
        };
        let mut location = location;
        let final_body;
        if size <= UPLOAD_CHUNK {
            final_body = read_chunk(&mut file, 0, size)?;
        } else {
            let mut off = 0;
            while off < size {
                let len = UPLOAD_CHUNK.min(size - off);
                let chunk = read_chunk(&mut file, off, len)?;
                let resp = self.call(&Call {
                    method: http::Method::PATCH,
                    url: location.clone(),
                    headers: vec![
                        ("content-type", "application/octet-stream".into()),
                        ("content-range", format!("{off}-{}", off + len - 1)),
                    ],
                    body: Some(&chunk),
                    scopes: vec![push_scope(repo)],
                    what: what.clone(),
                })?;
                if resp.status().as_u16() != 202 {
                    return Err(self.status_error(&what, resp));
                }
                if let Some(l) = header(&resp, "location") {
                    location = join_url(&location, &l);
                }
                off += len;
            }
            final_body = Vec::new();
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let resp = self.call(&Call {
            method: http::Method::PUT,
            url: format!("{location}{sep}digest={}", encode(digest.as_str())),
            headers: vec![("content-type", "application/octet-stream".into())],
            body: Some(&final_body),
            scopes: vec![push_scope(repo)],
            what: what.clone(),
        })?;
        if resp.status().as_u16() != 201 {
            return Err(self.status_error(&what, resp));
        }
        Ok(Upload::Pushed)
    }

    /// `PUT /v2/REPO/manifests/REF` with its media type; returns the digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        raw: &[u8],
    ) -> Result<Digest, RegistryError> {
        let what = format!("manifest {repo}:{reference}");
        let resp = self.call(&Call {
            method: http::Method::PUT,
            url: format!("/v2/{repo}/manifests/{reference}"),
            headers: vec![("content-type", media_type.to_string())],
            body: Some(raw),
            scopes: vec![push_scope(repo)],
            what: what.clone(),
        })?;
        if resp.status().as_u16() != 201 {
            return Err(self.status_error(&what, resp));
        }
        let digest = crate::image::sha256_of(raw);
        if let Some(said) = header(&resp, "docker-content-digest")
            && said != digest.as_str()
        {
            return Err(RegistryError::Digest {
                what: format!("registry {}: {what}", self.name),
                expected: digest,
                actual: said,
            });
        }
        Ok(digest)
    }
}
