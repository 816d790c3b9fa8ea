//! Pull and push against a real registry (Debian's `docker-registry`, the distribution
//! project's registry v2) on 127.0.0.1, through the command line as a user types it: push
//! from one store, pull into another, compare digests and mounted trees; multi-platform
//! indexes, pulls by digest, re-pushes, cross-repository mounts, chunked uploads; token and
//! basic auth; and faults (registry down, 404, corrupt blob, connection cut mid-blob, auth
//! refused), after each of which the store is exactly as before.

mod common;

use common::proxy::Proxy;
use common::registry::{Registry, free_port, registry_or_skip};
use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use unionmount::registry::client::BlobData;
use unionmount::registry::{Client, ClientOptions};

const TIMEOUT: Duration = Duration::from_secs(120);

fn demo_oci() -> String {
    format!(
        "oci:{}:latest",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("layers-testdata/demo-oci")
            .display()
    )
}

/// A store of its own, with a home of its own (no auth files but the test's).
struct Store {
    tmp: tempfile::TempDir,
    root: PathBuf,
    env: Vec<(String, String)>,
}

impl Store {
    fn new() -> Store {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("store");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).expect("mkdir home");
        let env = vec![
            ("HOME".to_string(), home.display().to_string()),
            ("XDG_RUNTIME_DIR".to_string(), home.display().to_string()),
        ];
        Store { tmp, root, env }
    }

    fn root(&self) -> &str {
        self.root.to_str().expect("utf-8 temp dir")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `unionmount ARGS --root ROOT` with the store's environment, whatever its outcome.
    fn try_run(&self, args: &[&str]) -> Finished {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--root", self.root()]);
        let out = self.path("out");
        let err = self.path("err");
        let mut child = Command::new(unionmount_bin())
            .args(&all)
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("spawn unionmount");
        let (status, killed) = wait_or_kill(&mut child, TIMEOUT);
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        assert!(
            !killed,
            "unionmount {all:?} hung; killed. stderr:\n{stderr}"
        );
        Finished {
            status,
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr,
        }
    }

    /// `unionmount ARGS --root ROOT`, which must succeed: its stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = self.try_run(args);
        assert!(
            out.status.success(),
            "unionmount {args:?}: {}\nstderr:\n{}\nstdout:\n{}",
            out.status,
            out.stderr,
            out.stdout
        );
        out.stdout
    }

    /// `unionmount ARGS` must fail with one line on stderr holding every needle; the store
    /// must be as it was (images, blobs, nothing left in ingest/).
    fn fails(&self, args: &[&str], needles: &[&str]) -> String {
        let before = self.state();
        let out = self.try_run(args);
        let stderr = out.stderr.trim_end().to_string();
        assert!(!out.status.success(), "{args:?} succeeded:\n{}", out.stdout);
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: want one line:\n{stderr}"
        );
        for n in needles {
            assert!(stderr.contains(n), "{args:?}: {n:?} not in: {stderr}");
        }
        assert_eq!(self.state(), before, "{args:?} changed the store");
        stderr
    }

    /// What a failed command must not change: the image list with digests, the blobs, and
    /// an empty ingest/.
    fn state(&self) -> (String, Vec<String>, Vec<String>) {
        let images = self.run(&[
            "images",
            "-a",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.Digest}} {{.ID}} {{.Size}}",
        ]);
        (
            images,
            names_in(&self.root.join("blobs/sha256")),
            names_in(&self.root.join("ingest")),
        )
    }

    /// `images --format` of one image: `{{.Digest}} {{.ID}}`.
    fn digests(&self, image: &str) -> String {
        self.run(&[
            "inspect",
            "--format",
            "{{json .RepoDigests}} {{.Id}} {{json .RootFS.Layers}}",
            image,
        ])
        .trim()
        .to_string()
    }

    /// A one-layer image `name` (by `import` of a tarball) holding `files`.
    fn import(&self, name: &str, files: &[(&str, &[u8])]) {
        let dir = self.path(&format!("src-{}", name.replace([':', '/'], "-")));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (path, data) in files {
            std::fs::write(dir.join(path), data).expect("write file");
        }
        let tarball = dir.with_extension("tar");
        let ok = Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .expect("tar");
        assert!(ok.success());
        self.run(&["import", tarball.to_str().expect("utf-8"), name]);
    }

    fn blob(&self, digest: &str) -> PathBuf {
        self.root
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Deterministic incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// The manifest digest of a store image.
fn manifest_digest(store: &Store, image: &str) -> String {
    store
        .run(&[
            "images",
            "--digests",
            "--no-trunc",
            "--format",
            "{{.Digest}}",
            image,
        ])
        .trim()
        .to_string()
}

/// Mounts a store image read-only in the foreground and snapshots its tree.
fn tree_of(store: &Store, image: &str, name: &str) -> Snapshot {
    let mnt = mountpoint(store.tmp.path(), name);
    let m = UnionMount::start(
        &[
            "mount",
            "-f",
            "--read-only",
            "--root",
            store.root(),
            image,
            mnt.to_str().unwrap(),
        ],
        &mnt,
    );
    let snap = snapshot(m.path());
    drop(m);
    snap
}

#[test]
fn push_then_pull_round_trips_with_the_same_digests_and_tree() {
    if !registry_or_skip() || !root_or_skip() {
        return;
    }
    let registry = Registry::start();
    let host = registry.host();
    let a = Store::new();
    a.run(&["pull", "-q", &demo_oci()]);
    let target = format!("{host}/demo:1");
    let out = a.run(&["push", "demo-oci:latest", &target]);
    assert!(
        out.starts_with(&format!("The push refers to repository [{host}/demo]\n")),
        "{out}"
    );
    assert_eq!(out.matches(": Pushed\n").count(), 3, "{out}");
    let digest = manifest_digest(&a, "demo-oci:latest");
    assert!(
        out.ends_with(&format!("1: digest: {digest} size: 712\n")),
        "{out}"
    );

    // A second push finds everything there.
    let again = a.run(&["push", "demo-oci:latest", &target]);
    assert_eq!(
        again.matches(": Layer already exists\n").count(),
        3,
        "{again}"
    );

    let b = Store::new();
    let pulled = b.run(&["pull", &format!("docker://{target}")]);
    assert!(pulled.contains("1: Pulling from demo\n"), "{pulled}");
    assert!(pulled.contains(&format!("Digest: {digest}\n")), "{pulled}");
    assert!(
        pulled.ends_with(&format!(
            "Status: Downloaded newer image for {target}\n{target}\n"
        )),
        "{pulled}"
    );
    assert_eq!(manifest_digest(&b, &target), digest);
    let (da, db) = (a.digests("demo-oci:latest"), b.digests(&target));
    assert_eq!(da.split(' ').nth(1), db.split(' ').nth(1), "image IDs");
    assert_eq!(da.split(' ').nth(2), db.split(' ').nth(2), "diff_ids");
    assert_eq!(
        names_in(&a.root.join("blobs/sha256")),
        names_in(&b.root.join("blobs/sha256"))
    );
    assert_same_tree(
        "pulled image vs pushed image",
        &tree_of(&a, "demo-oci:latest", "mnt-a"),
        &tree_of(&b, &target, "mnt-b"),
        &Exclusions::default(),
    );

    // Pulling again downloads nothing; pulling by digest gives the same image untagged.
    let up_to_date = b.run(&["pull", &target]);
    assert!(
        up_to_date.contains("Status: Image is up to date for"),
        "{up_to_date}"
    );
    let c = Store::new();
    c.run(&["pull", "-q", &format!("{host}/demo@{digest}")]);
    assert_eq!(
        c.run(&[
            "images",
            "-a",
            "--digests",
            "--no-trunc",
            "--format",
            "{{.Repository}} {{.Digest}}"
        ])
        .trim(),
        format!("<none> {digest}")
    );

    // From the store that pulled it, a push to another repository of the same registry
    // mounts the blobs instead of uploading them.
    let copy = b.run(&["push", &target, &format!("{host}/team/copy:2")]);
    assert_eq!(copy.matches(": Mounted from demo\n").count(), 3, "{copy}");
    let d = Store::new();
    d.run(&["pull", "-q", &format!("{host}/team/copy:2")]);
    assert_eq!(manifest_digest(&d, &format!("{host}/team/copy:2")), digest);
}

#[test]
fn large_layers_upload_in_chunks_and_a_cut_download_resumes() {
    if !registry_or_skip() {
        return;
    }
    let registry = Registry::start();
    let a = Store::new();
    // Over the 16 MiB single-PUT limit: two PATCH chunks.
    let big = noise(20 << 20, 7);
    a.import("big:1", &[("big.bin", &big), ("small.txt", b"hello\n")]);
    let target = format!("{}/big:1", registry.host());
    a.run(&["push", "-q", "big:1", &target]);

    // Through a proxy that cuts the first connection after 5 MiB of answers.
    let proxy = Proxy::start(registry.port);
    proxy.cut_once_after(5 << 20);
    let b = Store::new();
    let via = format!("localhost:{}/big:1", proxy.port);
    b.run(&["pull", "-q", &via]);
    assert_eq!(proxy.cuts(), 1, "the proxy cut no connection");
    let layer = std::fs::metadata(a.blob(&first_layer(&a, "big:1")))
        .expect("layer")
        .len();
    let served = proxy.served();
    assert!(
        served < layer + (1 << 20),
        "the resumed pull fetched {served} bytes for a {layer}-byte layer (restarted?)"
    );
    assert_eq!(manifest_digest(&b, &via), manifest_digest(&a, "big:1"));
    assert_eq!(first_layer(&b, &via), first_layer(&a, "big:1"));
}

#[test]
fn insecure_registries_need_tls_verify_false_and_fall_back_to_http() {
    if !registry_or_skip() {
        return;
    }
    let registry = Registry::start();
    let a = Store::new();
    a.run(&["pull", "-q", &demo_oci()]);
    a.run(&[
        "push",
        "-q",
        "demo-oci:latest",
        &format!("{}/demo:1", registry.host()),
    ]);
    // 127.0.0.2 is not one of the loopback names spoken to in plain HTTP: HTTPS is tried.
    let proxy = Proxy::start_on("127.0.0.2", registry.port);
    let remote = format!("127.0.0.2:{}/demo:1", proxy.port);
    let b = Store::new();
    b.fails(
        &["pull", &remote],
        &[
            "registry 127.0.0.2:",
            "cannot connect",
            "--tls-verify=false",
        ],
    );
    b.run(&["pull", "-q", "--tls-verify=false", &remote]);
    assert_eq!(
        manifest_digest(&b, &remote),
        manifest_digest(&a, "demo-oci:latest")
    );
}

/// The digest of an image's first layer.
fn first_layer(store: &Store, image: &str) -> String {
    let manifest = manifest_digest(store, image);
    let raw = std::fs::read(store.blob(&manifest)).expect("manifest blob");
    let doc: serde_json::Value = serde_json::from_slice(&raw).expect("manifest JSON");
    doc["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string()
}

#[test]
fn a_multi_platform_index_is_narrowed_by_platform() {
    if !registry_or_skip() {
        return;
    }
    let registry = Registry::start();
    let host = registry.host();
    let a = Store::new();
    a.run(&["pull", "-q", &demo_oci()]);
    a.import("other:1", &[("arm.txt", b"arm64 build\n")]);
    a.run(&[
        "push",
        "-q",
        "demo-oci:latest",
        &format!("{host}/multi:amd64"),
    ]);
    a.run(&["push", "-q", "other:1", &format!("{host}/multi:arm64")]);
    let amd = manifest_digest(&a, "demo-oci:latest");
    let arm = manifest_digest(&a, "other:1");
    let size = |d: &str| std::fs::metadata(a.blob(d)).expect("manifest").len();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd,
             "size": size(&amd), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm,
             "size": size(&arm), "platform": {"os": "linux", "architecture": "arm64"}},
        ]
    });
    // Through the library, as lazy mounts will use it.
    let client = Client::new(&host, &ClientOptions::default());
    let raw = serde_json::to_vec(&index).expect("index JSON");
    let index_digest = client
        .put_manifest(
            "multi",
            "1",
            "application/vnd.oci.image.index.v1+json",
            &raw,
        )
        .expect("put index");

    let b = Store::new();
    let out = b.run(&[
        "pull",
        "--platform",
        "linux/arm64",
        &format!("{host}/multi:1"),
    ]);
    assert!(out.contains(&format!("Digest: {index_digest}\n")), "{out}");
    assert_eq!(manifest_digest(&b, &format!("{host}/multi:1")), arm);
    b.run(&[
        "pull",
        "-q",
        "--platform",
        "linux/amd64",
        &format!("{host}/multi:1"),
    ]);
    assert_eq!(manifest_digest(&b, &format!("{host}/multi:1")), amd);
    b.fails(
        &[
            "pull",
            "--platform",
            "linux/s390x",
            &format!("{host}/multi:1"),
        ],
        &[
            "no manifest for platform linux/s390x",
            "linux/amd64, linux/arm64",
        ],
    );

    // The library's blob API: sizes, ranges, a reader from an offset.
    let layer = first_layer(&a, "other:1");
    let digest = unionmount::layer::blob::Digest::parse(&layer).expect("digest");
    let whole = std::fs::read(a.blob(&layer)).expect("layer");
    assert_eq!(
        client.blob_size("multi", &digest).expect("HEAD"),
        Some(whole.len() as u64)
    );
    let range = client.blob_range("multi", &digest, 100, 50).expect("range");
    assert_eq!(range, whole[100..150]);
    let mut rest = Vec::new();
    client
        .blob_reader("multi", &digest, 1000)
        .expect("reader")
        .read_to_end(&mut rest)
        .expect("read");
    assert_eq!(rest, whole[1000..]);
    let missing = unionmount::layer::blob::Digest::parse(&format!("sha256:{}", "0".repeat(64)))
        .expect("digest");
    assert_eq!(client.blob_size("multi", &missing).expect("HEAD"), None);
    let data = b"pushed through the library";
    let d = unionmount::layer::blob::Digest::from_sha256(&sha256(data));
    client
        .put_blob("multi", &d, BlobData::Bytes(data), None)
        .expect("put_blob");
    assert_eq!(client.blob_range("multi", &d, 0, 100).expect("range"), data);
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).to_vec()
}

#[test]
fn faults_give_one_line_and_leave_the_store_as_it_was() {
    if !registry_or_skip() {
        return;
    }
    let registry = Registry::start();
    let host = registry.host();
    let a = Store::new();
    a.run(&["pull", "-q", &demo_oci()]);
    a.import("payload:1", &[("data.bin", &noise(2 << 20, 3))]);
    a.run(&["push", "-q", "payload:1", &format!("{host}/payload:1")]);

    let b = Store::new();
    b.run(&["pull", "-q", &demo_oci()]);
    // Registry down.
    let down = format!("localhost:{}/payload:1", free_port());
    b.fails(&["pull", &down], &["cannot connect", "Connection refused"]);
    a.fails(&["push", "payload:1", &down], &["cannot connect"]);
    // No such tag, no such repository.
    b.fails(
        &["pull", &format!("{host}/payload:nope")],
        &["HTTP 404", "MANIFEST_UNKNOWN"],
    );
    b.fails(&["pull", &format!("{host}/nothing:1")], &["HTTP 404"]);
    // A malformed reference is a usage error.
    let bad = b.fails(
        &["pull", &format!("{host}/UPPER:1")],
        &["invalid repository name"],
    );
    assert!(bad.contains("UPPER"), "{bad}");
    // The registry serves a corrupt layer (same size, other bytes).
    let layer = first_layer(&a, "payload:1");
    let file = registry.blob_file(&layer);
    let mut data = std::fs::read(&file).expect("registry blob");
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&file, &data).expect("tamper");
    b.fails(
        &["pull", &format!("{host}/payload:1")],
        &["digest mismatch", &layer],
    );
    // Corrupt manifests are caught too: by digest, against what the registry sends.
    let digest = manifest_digest(&a, "payload:1");
    let manifest_file = registry.blob_file(&digest);
    let mut manifest = std::fs::read(&manifest_file).expect("registry manifest");
    manifest.push(b' ');
    std::fs::write(&manifest_file, &manifest).expect("tamper");
    b.fails(
        &["pull", &format!("{host}/payload@{digest}")],
        &["digest mismatch"],
    );
}

#[test]
fn basic_auth_from_flags_and_auth_files() {
    if !registry_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let htpasswd = dir.path().join("htpasswd");
    let Some(line) = bcrypt_line("alice", "wonderland") else {
        eprintln!("SKIPPED: no bcrypt hasher (python3 crypt) for the htpasswd file");
        return;
    };
    std::fs::write(&htpasswd, line).expect("htpasswd");
    let registry = Registry::start_with(&format!(
        "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
        htpasswd.display()
    ));
    let host = registry.host();
    let a = Store::new();
    a.run(&["pull", "-q", &demo_oci()]);
    let target = format!("{host}/private:1");
    a.fails(
        &["push", "demo-oci:latest", &target],
        &[&host, "authentication required"],
    );
    a.fails(
        &["push", "--creds", "alice:wrong", "demo-oci:latest", &target],
        &[&host, "authentication refused"],
    );
    a.run(&[
        "push",
        "-q",
        "--creds",
        "alice:wonderland",
        "demo-oci:latest",
        &target,
    ]);

    // Credentials from the podman auth file ($XDG_RUNTIME_DIR/containers/auth.json).
    let mut b = Store::new();
    b.fails(&["pull", &target], &["authentication required"]);
    let runtime = b.path("runtime");
    std::fs::create_dir_all(runtime.join("containers")).expect("mkdir");
    std::fs::write(
        runtime.join("containers/auth.json"),
        format!(
            r#"{{"auths":{{"{host}":{{"auth":"{}"}}}}}}"#,
            base64("alice:wonderland")
        ),
    )
    .expect("auth.json");
    b.env
        .push(("XDG_RUNTIME_DIR".into(), runtime.display().to_string()));
    b.run(&["pull", "-q", &target]);
    assert_eq!(
        manifest_digest(&b, &target),
        manifest_digest(&a, "demo-oci:latest")
    );
}

/// `user:$2b$...` for an htpasswd file, with python3's crypt (bcrypt); `None` without it.
fn bcrypt_line(user: &str, password: &str) -> Option<String> {
    let out = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            &format!(
                "import crypt; print('{user}:' + crypt.crypt('{password}', crypt.mksalt(crypt.METHOD_BLOWFISH)))"
            ),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && text.contains(":$2")).then_some(text)
}

fn base64(s: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn token_auth_through_a_token_service() {
    if !registry_or_skip() {
        return;
    }
    let registry = Registry::start();
    let gate = TokenGate::start(registry.port, "bob", "builder");
    let host = format!("localhost:{}", gate.port);
    let a = Store::new();
    a.run(&["pull", "-q", &demo_oci()]);
    let target = format!("{host}/secure/app:1");
    a.fails(
        &["push", "demo-oci:latest", &target],
        &[
            &host,
            "authentication refused by the token service",
            "no credentials",
        ],
    );
    a.fails(
        &["push", "--creds", "bob:nope", "demo-oci:latest", &target],
        &[
            &host,
            "authentication refused by the token service",
            "check the credentials",
        ],
    );
    let out = a.run(&["push", "--creds", "bob:builder", "demo-oci:latest", &target]);
    assert_eq!(out.matches(": Pushed\n").count(), 3, "{out}");
    let b = Store::new();
    b.run(&["pull", "-q", "--creds", "bob:builder", &target]);
    assert_eq!(
        manifest_digest(&b, &target),
        manifest_digest(&a, "demo-oci:latest")
    );
    // Tokens are cached per scope: far fewer token requests than registry requests.
    let (tokens, forwarded) = (
        gate.tokens.load(Ordering::SeqCst),
        gate.forwarded.load(Ordering::SeqCst),
    );
    assert!(
        tokens >= 2 && tokens * 3 < forwarded,
        "{tokens} tokens for {forwarded} requests"
    );
}

/// A token-auth front for a registry (the distribution spec's token flow without JWTs):
/// `/v2/...` without `Authorization: Bearer tok-OK` gets a `401` with a `Bearer` challenge
/// whose realm is `/token` here; `/token` hands out the token for the right basic
/// credentials; everything else is forwarded.
struct TokenGate {
    port: u16,
    tokens: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
}

impl TokenGate {
    fn start(upstream: u16, user: &str, password: &str) -> TokenGate {
        let basic = format!("Basic {}", base64(&format!("{user}:{password}")));
        let tokens = Arc::new(AtomicU64::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let (t, f) = (tokens.clone(), forwarded.clone());
        let port = Front::start(upstream, move |req: &Request, port: u16| {
            if req.path.starts_with("/token") {
                if req.header("authorization") == Some(basic.as_str())
                    && req.path.contains("scope=")
                {
                    t.fetch_add(1, Ordering::SeqCst);
                    return Action::reply("200 OK", "", r#"{"token":"tok-OK"}"#);
                }
                return Action::reply("401 Unauthorized", "", r#"{"details":"bad credentials"}"#);
            }
            if req.header("authorization") != Some("Bearer tok-OK") {
                let name = req
                    .path
                    .strip_prefix("/v2/")
                    .and_then(|p| {
                        ["/manifests/", "/blobs/", "/tags/"]
                            .iter()
                            .find_map(|m| p.find(m).map(|i| &p[..i]))
                    })
                    .unwrap_or_default();
                let scope = if name.is_empty() {
                    String::new()
                } else {
                    format!(",scope=\"repository:{name}:pull\"")
                };
                return Action::reply(
                    "401 Unauthorized",
                    &format!(
                        "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"gate\"{scope}\r\n"
                    ),
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                );
            }
            f.fetch_add(1, Ordering::SeqCst);
            Action::Forward
        });
        TokenGate {
            port,
            tokens,
            forwarded,
        }
    }
}

/// One request as an HTTP front sees it.
struct Request {
    line: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a front does with a request.
enum Action {
    Reply(String),
    /// Pass it to the registry (without `Authorization`), one request per connection.
    Forward,
}

impl Action {
    fn reply(status: &str, extra: &str, body: &str) -> Action {
        Action::Reply(format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\
             Connection: close\r\n{extra}\r\n{body}",
            body.len()
        ))
    }
}

/// A small HTTP front on a free port of 127.0.0.1 before a registry: each request's head is
/// parsed and handed to `handler` (with the front's own port), which answers it or has it
/// forwarded.
struct Front;

impl Front {
    fn start<F>(upstream: u16, handler: F) -> u16
    where
        F: Fn(&Request, u16) -> Action + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind front");
        let port = listener.local_addr().expect("addr").port();
        let handler = Arc::new(handler);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let handler = handler.clone();
                std::thread::spawn(move || front_one(conn, upstream, port, &*handler));
            }
        });
        port
    }
}

fn front_one(
    mut conn: TcpStream,
    upstream: u16,
    port: u16,
    handler: &(dyn Fn(&Request, u16) -> Action + Send + Sync),
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let body_start = loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..body_start]).into_owned();
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default().to_string();
    let req = Request {
        path: line.split(' ').nth(1).unwrap_or_default().to_string(),
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect(),
        line,
    };
    let reply = match handler(&req, port) {
        Action::Reply(reply) => reply,
        Action::Forward => {
            forward(conn, upstream, &req, &head[body_start..]);
            return;
        }
    };
    let _ = conn.write_all(reply.as_bytes());
}

fn forward(mut conn: TcpStream, upstream: u16, req: &Request, body_head: &[u8]) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let mut out = format!("{}\r\n", req.line);
    for (k, v) in &req.headers {
        if k != "authorization" && k != "connection" {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    if server.write_all(out.as_bytes()).is_err() || server.write_all(body_head).is_err() {
        return;
    }
    let (Ok(mut c_read), Ok(mut s_write)) = (conn.try_clone(), server.try_clone()) else {
        return;
    };
    let length: u64 = req
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let rest = length.saturating_sub(body_head.len() as u64);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut (&mut c_read).take(rest), &mut s_write);
    });
    let _ = std::io::copy(&mut server, &mut conn);
    let _ = conn.shutdown(std::net::Shutdown::Both);
    let _ = up.join();
}

/// The `Range` and `Authorization` headers of a request the "CDN" got.
type Seen = (Option<String>, Option<String>);

#[test]
fn blob_redirects_keep_the_range_and_drop_the_credentials() {
    if !registry_or_skip() {
        return;
    }
    let registry = Registry::start();
    let a = Store::new();
    a.import("payload:1", &[("data.bin", &noise(300 << 10, 5))]);
    a.run(&[
        "push",
        "-q",
        "payload:1",
        &format!("{}/payload:1", registry.host()),
    ]);
    let layer = first_layer(&a, "payload:1");
    let whole = std::fs::read(a.blob(&layer)).expect("layer");

    // The "CDN": another host that records what it is sent.
    let seen: Arc<std::sync::Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let cdn = Front::start(registry.port, move |req: &Request, _| {
        log.lock().expect("log").push((
            req.header("range").map(str::to_string),
            req.header("authorization").map(str::to_string),
        ));
        Action::Forward
    });
    // The registry: basic auth, and blob GETs redirected to the CDN.
    let basic = format!("Basic {}", base64("carol:pw"));
    let front = Front::start(registry.port, move |req: &Request, _| {
        if req.header("authorization") != Some(basic.as_str()) {
            return Action::reply(
                "401 Unauthorized",
                "WWW-Authenticate: Basic realm=\"front\"\r\n",
                "{}",
            );
        }
        if req.line.starts_with("GET ") && req.path.contains("/blobs/sha256:") {
            return Action::reply(
                "307 Temporary Redirect",
                &format!("Location: http://127.0.0.1:{cdn}{}\r\n", req.path),
                "",
            );
        }
        Action::Forward
    });
    let options = ClientOptions {
        creds: Some(unionmount::registry::auth::Credentials::parse("carol:pw").expect("creds")),
        ..ClientOptions::default()
    };
    let client = Client::new(&format!("localhost:{front}"), &options);
    let digest = unionmount::layer::blob::Digest::parse(&layer).expect("digest");
    let range = client
        .blob_range("payload", &digest, 1000, 4096)
        .expect("range");
    assert_eq!(range, whole[1000..5096]);
    assert_eq!(
        *seen.lock().expect("log"),
        [(Some("bytes=1000-5095".to_string()), None)],
        "the CDN must see the Range and no credentials"
    );
    // The whole pull through the redirect.
    let b = Store::new();
    b.run(&[
        "pull",
        "-q",
        "--creds",
        "carol:pw",
        &format!("localhost:{front}/payload:1"),
    ]);
    assert_eq!(
        first_layer(&b, &format!("localhost:{front}/payload:1")),
        layer
    );
    assert!(
        seen.lock()
            .expect("log")
            .iter()
            .all(|(_, auth)| auth.is_none())
    );
}
