//! A real registry for tests: Debian's `docker-registry` (the distribution project's
//! registry v2) started with a config of its own, storage in a temp dir, on a free port of
//! 127.0.0.1; killed when the guard drops. Tests skip (with a message) where it is missing,
//! except under CI, which installs it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Whether the registry binary is here; prints why a test is skipped when not. Under CI a
/// missing registry fails the test instead.
pub fn registry_or_skip() -> bool {
    if Path::new(REGISTRY_BIN).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{REGISTRY_BIN} is missing and CI is set: apt-get install docker-registry (see .ci/run)"
    );
    eprintln!("SKIPPED: {REGISTRY_BIN} is missing (apt-get install docker-registry)");
    false
}

/// A running registry; killed (by its pid) on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// A registry without auth.
    pub fn start() -> Registry {
        Registry::start_with("")
    }

    /// A registry whose config has `extra` appended (e.g. an `auth:` section).
    pub fn start_with(extra: &str) -> Registry {
        let dir = tempfile::tempdir().expect("registry tempdir");
        // Bind, read the port, release: a small race with other tests, retried below.
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\n{extra}",
                    dir.path().join("data").display()
                ),
            )
            .expect("write registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let mut child = child;
            if wait_ready(&mut child, port) {
                return Registry { child, port, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start (see its log in the test's temp dir)");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `localhost:PORT`, the registry's host in references.
    pub fn host(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// The file the registry keeps a blob's bytes in.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The registry's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until the registry accepts connections; false if it exits or takes too long.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
