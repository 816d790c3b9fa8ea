//! Blob reads: whole streams that resume a cut transfer with `Range: bytes=N-`, and byte
//! ranges (what lazy mounts read), both following redirects to another host without our
//! credentials.

use std::io::{self, Read};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use ureq::http;

use super::{Call, Client, RETRIES, header, pull_scope};
use crate::layer::blob::Digest;
use crate::registry::RegistryError;

impl Client {
    /// Opens a GET of the blob from `offset` (`len` bytes, or to the end). Returns the body,
    /// the blob's whole size if the registry said (a 206's total, a 200's length), and how
    /// many leading bytes of the body to skip (a registry that ignored `Range` sent it all).
    fn open_blob(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
        len: Option<u64>,
    ) -> Result<(ureq::Body, Option<u64>, u64), RegistryError> {
        let what = format!("blob {repo}@{digest}");
        let mut headers = Vec::new();
        match len {
            Some(0) => {}
            Some(n) => headers.push(("range", format!("bytes={offset}-{}", offset + n - 1))),
            None if offset > 0 => headers.push(("range", format!("bytes={offset}-"))),
            None => {}
        }
        let resp = self.call(&Call {
            method: http::Method::GET,
            url: format!("/v2/{repo}/blobs/{digest}"),
            headers,
            body: None,
            scopes: vec![pull_scope(repo)],
            what: what.clone(),
        })?;
        match resp.status().as_u16() {
            206 => {
                let range = header(&resp, "content-range").unwrap_or_default();
                let (start, total) = parse_content_range(&range)
                    .ok_or_else(|| self.protocol(format!("{what}: bad Content-Range {range:?}")))?;
                if start != offset {
                    return Err(self.protocol(format!(
                        "{what}: asked for bytes from {offset}, got from {start}"
                    )));
                }
                Ok((resp.into_body(), total, 0))
            }
            200 => {
                let total = header(&resp, "content-length").and_then(|l| l.parse().ok());
                Ok((resp.into_body(), total, offset))
            }
            _ => Err(self.status_error(&what, resp)),
        }
    }

    /// The blob from byte `from` as a stream; a cut transfer is resumed with `Range`. The
    /// bytes are not checked against the digest here (callers hash what they read).
    pub fn blob_reader(
        &self,
        repo: &str,
        digest: &Digest,
        from: u64,
    ) -> Result<BlobReader<'_>, RegistryError> {
        let (body, size, skip) = self.open_blob(repo, digest, from, None)?;
        let mut reader = BlobReader {
            client: self,
            repo: repo.to_string(),
            digest: digest.clone(),
            pos: from,
            size,
            body: Some(body.into_reader()),
            failures: 0,
            resumes: 0,
        };
        reader.skip_body(skip)?;
        Ok(reader)
    }

    /// `len` bytes of the blob from `offset` (fewer at its end), with one `Range` GET
    /// (retried, and resumed if cut).
    pub fn blob_range(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len.min(64 << 20) as usize);
        let mut failures = 0;
        while (out.len() as u64) < len {
            let pos = offset + out.len() as u64;
            let want = len - out.len() as u64;
            let result = self.open_blob(repo, digest, pos, Some(want));
            let (body, _, skip) = match result {
                Ok(r) => r,
                // Asking past the end: the registry says 416.
                Err(RegistryError::Status { status: 416, .. }) => break,
                Err(e) => return Err(io::Error::other(e.to_string())),
            };
            let mut reader = body.into_reader();
            if skip > 0 {
                io::copy(&mut (&mut reader).take(skip), &mut io::sink())?;
            }
            let before = out.len();
            let got = (&mut reader).take(want).read_to_end(&mut out);
            let progressed = out.len() > before;
            match got {
                Ok(_) if (out.len() as u64) < len && !progressed => break,
                Ok(_) => {}
                Err(e) => {
                    failures = if progressed { 1 } else { failures + 1 };
                    if failures > RETRIES {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("registry {}: blob {repo}@{digest}: {e}", self.name),
                        ));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A blob being read; resumes with `Range` when the connection is cut.
pub struct BlobReader<'a> {
    client: &'a Client,
    repo: String,
    digest: Digest,
    pos: u64,
    size: Option<u64>,
    body: Option<ureq::BodyReader<'static>>,
    /// Failures in a row without a byte of progress.
    failures: u32,
    /// Resumes made (for reports and tests).
    resumes: u32,
}

impl BlobReader<'_> {
    /// The blob's total size, when the registry said.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// How many times a cut transfer was resumed.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    fn skip_body(&mut self, n: u64) -> Result<(), RegistryError> {
        if let Some(body) = self.body.as_mut() {
            let skipped = io::copy(&mut body.take(n), &mut io::sink())
                .map_err(|e| self.client.protocol(format!("blob {}: {e}", self.digest)))?;
            if skipped < n {
                return Err(self
                    .client
                    .protocol(format!("blob {}: ends before byte {n}", self.digest)));
            }
        }
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        let (body, total, skip) = self
            .client
            .open_blob(&self.repo, &self.digest, self.pos, None)
            .map_err(|e| io::Error::other(e.to_string()))?;
        if self.size.is_none() {
            self.size = total;
        }
        self.body = Some(body.into_reader());
        self.skip_body(skip)
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.body.is_none() {
                if let Err(e) = self.reopen() {
                    self.failures += 1;
                    if self.failures > RETRIES {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(200 << self.failures.min(4)));
                    continue;
                }
                self.resumes += 1;
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            let err = match body.read(buf) {
                Ok(0) if self.size.is_some_and(|s| self.pos < s) => io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed at byte {}", self.pos),
                ),
                Ok(n) => {
                    if n > 0 {
                        self.failures = 0;
                    }
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) => e,
            };
            self.body = None;
            self.failures += 1;
            log::info!(
                "registry {}: blob {}: {err}; resuming at byte {}",
                self.client.name,
                self.digest,
                self.pos
            );
            if self.failures > RETRIES {
                return Err(io::Error::new(
                    err.kind(),
                    format!(
                        "registry {}: blob {}: {err} (gave up after {RETRIES} resumes)",
                        self.client.name, self.digest
                    ),
                ));
            }
        }
    }
}

/// Hashes what passes through a reader.
pub struct Hashing<R> {
    pub inner: R,
    pub hash: Sha256,
    pub count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`): the start and the total.
fn parse_content_range(s: &str) -> Option<(u64, Option<u64>)> {
    let rest = s.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    let total = total.trim().parse().ok();
    Some((start, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 10-19/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 0-9/*"), Some((0, None)));
        assert_eq!(parse_content_range("items 0-9/10"), None);
    }
}
