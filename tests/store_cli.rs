//! The local image store driven through the command line, as a user types it: pull, list,
//! mount by name, change, commit, tag, remove, prune, save/load, export/import. Every test has
//! its own store (`--root` in a temp dir) and its own mountpoints, so they run in parallel; a
//! guard unmounts whatever a test mounted, also when it fails.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

fn testdata(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("layers-testdata")
        .join(rel)
        .display()
        .to_string()
}

fn demo_oci() -> String {
    format!("oci:{}:latest", testdata("demo-oci"))
}

/// Runs `unionmount ARGS` with `env` added, stdin closed and output captured in files (a
/// daemonising mount keeps its copies of them open). A run past [`TIMEOUT`] fails the test.
fn unionmount(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let dir = tempfile::tempdir().expect("tempdir for output capture");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(unionmount_bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("create stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("create stderr file"))
        .spawn()
        .expect("spawn unionmount");
    let (status, killed) = wait_or_kill(&mut child, TIMEOUT);
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        !killed,
        "unionmount {args:?} hung; killed. stderr:\n{stderr}"
    );
    Finished {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr,
    }
}

/// A store of its own in a temp dir, which also holds the test's mountpoints and files.
struct Store {
    tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Store {
    fn new() -> Store {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("store");
        Store { tmp, root }
    }

    fn root(&self) -> &str {
        self.root.to_str().expect("utf-8 temp dir")
    }

    /// A path in the test's temp dir (not created).
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `NAME.tar`: a rootfs tarball (made by tar(1)) holding one file, `only-file`.
    fn tarball(&self, name: &str, content: &[u8]) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("only-file"), content).expect("write");
        let tarball = self.path(&format!("{name}.tar"));
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .args(["-cf".as_ref(), tarball.as_os_str(), ".".as_ref()])
            .status()
            .expect("run tar");
        assert!(tar.success(), "tar -cf {}", tarball.display());
        tarball
    }

    /// A fresh empty directory to mount on.
    fn mountpoint(&self, name: &str) -> PathBuf {
        mountpoint(self.tmp.path(), name)
    }

    /// `unionmount ARGS --root ROOT`, whatever its outcome.
    fn try_run(&self, args: &[&str]) -> Finished {
        let mut all = args.to_vec();
        all.extend(["--root", self.root()]);
        unionmount(&all, &[])
    }

    /// `unionmount ARGS --root ROOT`, which must succeed: its stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = self.try_run(args);
        assert!(
            out.status.success(),
            "unionmount {args:?} --root {}: {}\nstderr:\n{}\nstdout:\n{}",
            self.root(),
            out.status,
            out.stderr,
            out.stdout
        );
        out.stdout
    }

    fn pull_demo(&self) {
        self.run(&["pull", "-q", &demo_oci()]);
    }

    /// `unionmount mount [EXTRA...] IMAGE MNT --root ROOT` (the daemonising form).
    fn mount(&self, extra: &[&str], image: &str, mnt: &Path) -> Mounted {
        let mnt_s = mnt.to_str().expect("utf-8 mountpoint");
        let mut args = vec!["mount"];
        args.extend(extra);
        args.extend([image, mnt_s]);
        let guard = Mounted::new(mnt, Some(&self.root));
        self.run(&args);
        assert!(
            is_fuse_mount(mnt),
            "{mnt_s} is not a FUSE mount after {args:?}"
        );
        guard
    }

    /// The files of `blobs/sha256`.
    fn blob_count(&self) -> usize {
        names_of(&self.root.join("blobs/sha256")).len()
    }

    /// `images --format '{{.Repository}}:{{.Tag}}'`, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .run(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    /// `inspect --format TEMPLATE IMAGE`, trimmed.
    fn inspect(&self, image: &str, template: &str) -> String {
        self.run(&["inspect", "--format", template, image])
            .trim_end()
            .to_string()
    }

    /// `unionmount umount MNT`, then waits until `ps` no longer lists it: `umount` returns
    /// before the daemon has exited, and until then the store counts the mount as live.
    fn umount(&self, mounted: Mounted) {
        mounted.umount();
        let mnt = mounted.mnt.to_str().expect("utf-8").to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.run(&["ps", "-q"]).lines().any(|l| l == mnt) {
            assert!(
                std::time::Instant::now() < deadline,
                "{mnt} still listed by ps 10s after umount"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A mount made by the CLI; lazily unmounted on drop if the test did not unmount it.
struct Mounted {
    mnt: PathBuf,
    /// The store the mount was made from: `umount` is given it, as a user gives it the same
    /// `--root` (or `UNIONMOUNT_ROOT`), so that it finds the mount's record and waits for
    /// the daemon to exit.
    root: Option<PathBuf>,
}

impl Mounted {
    fn new(mnt: &Path, root: Option<&Path>) -> Mounted {
        require_fuse();
        Mounted {
            mnt: mnt.canonicalize().expect("mountpoint exists"),
            root: root.map(Path::to_path_buf),
        }
    }

    /// `unionmount umount MNT`, which must succeed and leave no mount.
    fn umount(&self) {
        let mut args = vec!["umount", self.mnt.to_str().expect("utf-8")];
        if let Some(root) = &self.root {
            args.extend(["--root", root.to_str().expect("utf-8")]);
        }
        let out = unionmount(&args, &[]);
        assert!(out.status.success(), "umount: {}", out.stderr);
        assert!(!is_fuse_mount(&self.mnt), "still mounted after umount");
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if is_fuse_mount(&self.mnt) {
            let _ = umount2(&self.mnt, libc::MNT_DETACH);
        }
    }
}

/// What a tree holds, by relative path: its kind and, for a file its contents' digest, for a
/// symlink its target. Times, modes and owners are left out (umoci's unpack and the store
/// each keep them in their own way).
fn files(root: &Path) -> BTreeMap<String, String> {
    snapshot(root)
        .nodes
        .into_iter()
        .filter(|(path, _)| !path.is_empty())
        .map(|(path, n)| {
            let what = match n.kind {
                'f' => format!("file {}", n.sha256.unwrap_or_default()),
                'l' => format!("symlink -> {}", n.link.unwrap_or_default()),
                k => k.to_string(),
            };
            (path, what)
        })
        .collect()
}

fn assert_same_files(what: &str, want: &BTreeMap<String, String>, got: &BTreeMap<String, String>) {
    let mut diffs = Vec::new();
    for (path, w) in want {
        match got.get(path) {
            None => diffs.push(format!("missing {path} ({w})")),
            Some(g) if g != w => diffs.push(format!("{path}: want {w}, got {g}")),
            Some(_) => {}
        }
    }
    for (path, g) in got {
        if !want.contains_key(path) {
            diffs.push(format!("extra {path} ({g})"));
        }
    }
    assert!(diffs.is_empty(), "{what}:\n  {}", diffs.join("\n  "));
}

fn tool_available(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("note: {tool} is not installed; skipping the {tool} part of this test");
    }
    found
}

fn run_tool(tool: &str, args: &[&str]) -> std::process::Output {
    Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"))
}

/// pull → mount by name → change → commit → umount → mount the new image read-only: it shows
/// what the writable mount showed; history and inspect show the commit; skopeo and umoci read
/// the new image from the store as the OCI layout it is.
#[test]
fn tour_pull_mount_change_commit_and_mount_the_result() {
    if !root_or_skip() {
        return;
    }
    let store = Store::new();
    let pulled = store.run(&["pull", &demo_oci()]);
    assert!(
        pulled.starts_with("demo-oci:latest: pulled sha256:"),
        "{pulled}"
    );
    let listed = store.run(&["images"]);
    assert!(
        listed
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["demo-oci", "latest"])),
        "images after pull:\n{listed}"
    );

    // The short form `unionmount IMAGE MNT`, with the store from the environment.
    let work = store.mountpoint("work");
    let writable = Mounted::new(&work, None);
    let out = unionmount(
        &["demo-oci", work.to_str().expect("utf-8")],
        &[("UNIONMOUNT_ROOT", store.root())],
    );
    assert!(out.status.success(), "short-form mount: {}", out.stderr);
    assert!(is_fuse_mount(&work));
    assert!(
        store
            .run(&["ps", "-q"])
            .lines()
            .any(|l| Path::new(l) == writable.mnt),
        "ps lists the live mount"
    );
    std::fs::write(work.join("etc/greeting"), "hello from the tour\n").expect("write a file");
    std::fs::remove_file(work.join("etc/motd")).expect("delete a lower file");
    std::fs::create_dir(work.join("srv")).expect("mkdir");
    let changed = files(&work);
    assert!(changed.contains_key("etc/greeting") && !changed.contains_key("etc/motd"));

    let id = store.run(&[
        "commit",
        work.to_str().expect("utf-8"),
        "tour:v1",
        "-m",
        "tour commit",
        "-c",
        "ENV TOUR=1",
    ]);
    let id = id.trim();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "commit prints the new image ID, got {id:?}"
    );
    store.umount(writable);
    assert!(store.names().contains(&"tour:v1".to_string()));

    let view = store.mountpoint("view");
    let committed = store.mount(&["--read-only"], "tour:v1", &view);
    assert_same_files(
        "the committed image vs the writable mount",
        &changed,
        &files(&view),
    );

    let history = store.run(&["history", "tour:v1"]);
    let top = history.lines().nth(1).unwrap_or_default();
    assert!(
        top.contains("tour commit"),
        "history's top entry is the commit:\n{history}"
    );
    assert_eq!(
        store.inspect("tour:v1", "{{json .Config.Env}}"),
        r#"["PATH=/usr/bin:/bin","TOUR=1"]"#
    );
    assert_eq!(store.inspect("tour:v1", "{{index .RepoTags 0}}"), "tour:v1");
    assert_eq!(store.inspect("tour:v1", "{{.Id}}"), id);
    assert!(
        store
            .inspect("tour:v1", "{{.Os}}/{{.Architecture}}")
            .starts_with("linux/")
    );
    let layers = store.inspect("tour:v1", "{{range .RootFS.Layers}}{{.}}{{\"\\n\"}}{{end}}");
    assert_eq!(
        layers.lines().count(),
        4,
        "three demo layers and the commit's"
    );

    let reference = format!("{}:tour:v1", store.root());
    if tool_available("skopeo") {
        let out = run_tool("skopeo", &["inspect", &format!("oci:{reference}")]);
        assert!(
            out.status.success(),
            "skopeo inspect oci:{reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if tool_available("umoci") {
        let bundle = store.path("bundle");
        // The test runs as root (it mounts), so umoci needs no --rootless.
        let unpack = |image: &str| {
            run_tool(
                "umoci",
                &["unpack", "--image", image, bundle.to_str().expect("utf-8")],
            )
        };
        let mut out = unpack(&reference);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        if !out.status.success() && err.contains("mediatype") && err.contains("zstd") {
            // umoci before 0.5 reads no zstd layers, and the demo's top layer is one: have
            // skopeo convert the image to gzip layers, and unpack that.
            eprintln!("note: this umoci cannot read zstd layers; unpacking a gzip copy");
            let _ = std::fs::remove_dir_all(&bundle);
            let copy = format!("{}:tour:v1", store.path("gzip-copy").display());
            let conv = run_tool(
                "skopeo",
                &[
                    "copy",
                    "--dest-compress",
                    "--dest-compress-format",
                    "gzip",
                    &format!("oci:{reference}"),
                    &format!("oci:{copy}"),
                ],
            );
            assert!(
                conv.status.success(),
                "skopeo copy to gzip: {}",
                String::from_utf8_lossy(&conv.stderr)
            );
            out = unpack(&copy);
        }
        assert!(
            out.status.success(),
            "umoci unpack {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_same_files(
            "umoci's rootfs vs the mounted committed image",
            &files(&view),
            &files(&bundle.join("rootfs")),
        );
    }
    committed.umount();
}

/// `images` in its shapes: the table header, IDs only, Go templates, JSON lines, filters.
#[test]
fn images_lists_in_docker_shapes() {
    let store = Store::new();
    store.run(&["load", "-i", &testdata("demo-docker.tar")]);
    let tarball = store.tarball("tree", b"one\n");
    let imported = store.run(&["import", tarball.to_str().expect("utf-8"), "small:1"]);
    // The demo's name moves to the new image: the demo is left dangling.
    store.run(&["tag", "small:1", "unionmount-demo:latest"]);

    let table = store.run(&["images"]);
    let header = table.lines().next().unwrap_or_default();
    let columns: Vec<&str> = header
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        columns,
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    );
    // A table: every row's fields start where their header does.
    let tag_at = header.find("TAG").expect("TAG column");
    let id_at = header.find("IMAGE ID").expect("IMAGE ID column");
    for row in table.lines().skip(1) {
        assert_eq!(row.as_bytes()[tag_at - 1], b' ', "{table}");
        assert_ne!(row.as_bytes()[tag_at], b' ', "TAG column:\n{table}");
        assert_ne!(row.as_bytes()[id_at], b' ', "IMAGE ID column:\n{table}");
    }
    assert_eq!(table.lines().count(), 4, "three images:\n{table}");

    let ids = store.run(&["images", "-q"]);
    assert_eq!(
        ids.lines().count(),
        2,
        "small and unionmount-demo share an image:\n{ids}"
    );
    for id in ids.lines() {
        assert!(
            id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id:?}"
        );
    }
    assert!(imported.trim().contains(ids.lines().next().unwrap_or("?")));

    assert_eq!(
        store.names(),
        ["<none>:<none>", "small:1", "unionmount-demo:latest"]
    );
    let table_template = store.run(&["images", "--format", "table {{.Repository}}\t{{.Tag}}"]);
    assert!(table_template.starts_with("REPOSITORY"), "{table_template}");

    for line in store.run(&["images", "--format", "json"]).lines() {
        let row: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("--format json line {line:?}: {e}"));
        assert!(
            row["ID"].is_string() && row["Repository"].is_string(),
            "{line}"
        );
    }

    let dangling = store.run(&[
        "images",
        "--filter",
        "dangling=true",
        "--format",
        "{{.Tag}}",
    ]);
    assert_eq!(dangling, "<none>\n");
    let by_pattern = store.run(&[
        "images",
        "--filter",
        "reference=sma*",
        "--format",
        "{{.Repository}}",
    ]);
    assert_eq!(by_pattern, "small\n");
    let full = store.run(&["images", "-q", "--no-trunc", "--filter", "reference=small"]);
    assert_eq!(full.trim(), imported.trim());
}

/// tag adds a name; rmi of one of two names only untags; rmi of the last name deletes the
/// image and the blobs nobody else uses.
#[test]
fn tag_and_rmi_change_names_and_blobs() {
    let store = Store::new();
    store.pull_demo();
    let blobs = store.blob_count();
    assert_eq!(blobs, 5, "three layers, a config and a manifest");

    store.run(&["tag", "demo-oci:latest", "second:name"]);
    assert_eq!(store.names(), ["demo-oci:latest", "second:name"]);

    assert_eq!(
        store.run(&["rmi", "second:name"]),
        "Untagged: second:name\n"
    );
    assert_eq!(store.names(), ["demo-oci:latest"]);
    assert_eq!(store.blob_count(), blobs, "untagging deletes nothing");

    let removed = store.run(&["rmi", "demo-oci"]);
    let lines: Vec<&str> = removed.lines().collect();
    assert_eq!(lines.len(), 2, "{removed}");
    assert_eq!(lines[0], "Untagged: demo-oci:latest");
    assert!(lines[1].starts_with("Deleted: sha256:"), "{removed}");
    assert!(store.names().is_empty());
    assert_eq!(store.blob_count(), 0, "no image is left to use a blob");
}

/// A name moved onto another image leaves the old one dangling; `image prune -f` removes it
/// and its blobs, and leaves the named image alone.
#[test]
fn retagging_leaves_a_dangling_image_that_prune_removes() {
    let store = Store::new();
    store.pull_demo();
    store.run(&["squash", "demo-oci", "flat:1"]);
    let with_both = store.blob_count();
    store.run(&["tag", "flat:1", "demo-oci:latest"]);
    assert_eq!(
        store.names(),
        ["<none>:<none>", "demo-oci:latest", "flat:1"]
    );
    assert_eq!(
        store
            .run(&["images", "-q", "--filter", "dangling=true"])
            .lines()
            .count(),
        1
    );

    let pruned = store.run(&["image", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space: "), "{pruned}");
    assert!(
        pruned.to_lowercase().contains("deleted: sha256:"),
        "{pruned}"
    );
    assert_eq!(store.names(), ["demo-oci:latest", "flat:1"]);
    assert_eq!(
        store.blob_count(),
        with_both - 5,
        "the demo's five blobs are gone"
    );

    let again = store.run(&["image", "prune", "-f", "--filter", "until=24h"]);
    assert_eq!(again, "Total reclaimed space: 0B\n");
    store.run(&["inspect", "flat:1"]);
}

/// rmi of an image with a live mount is refused (exit 1, naming the mountpoint) unless
/// forced; the forced mount goes on serving what it has open.
#[test]
fn rmi_of_a_mounted_image_needs_force() {
    if !root_or_skip() {
        return;
    }
    let store = Store::new();
    store.pull_demo();
    let mnt = store.mountpoint("mnt");
    let mounted = store.mount(&[], "demo-oci:latest", &mnt);

    let refused = store.try_run(&["rmi", "demo-oci:latest"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains(mounted.mnt.to_str().expect("utf-8")),
        "names the mountpoint: {}",
        refused.stderr
    );
    assert_eq!(store.names(), ["demo-oci:latest"]);

    let forced = store.run(&["rmi", "-f", "demo-oci:latest"]);
    assert!(forced.contains("Deleted: sha256:"), "{forced}");
    assert!(store.names().is_empty());
    store.umount(mounted);
}

/// Four pulls of the same image, two tag/rmi loops and a prune, all at once on one store:
/// afterwards index.json parses, every blob it reaches is there, and every image mounts and
/// inspects.
#[test]
fn concurrent_pulls_tags_and_removals_keep_the_store_whole() {
    if !root_or_skip() {
        return;
    }
    let store = Store::new();
    // The loops' source, there before they start; the pulls add demo-oci meanwhile.
    store.run(&["load", "-i", &testdata("demo-docker.tar")]);
    std::thread::scope(|s| {
        let mut jobs = Vec::new();
        for _ in 0..4 {
            jobs.push(s.spawn(|| store.pull_demo()));
        }
        for loop_no in 0..2 {
            let store = &store;
            jobs.push(s.spawn(move || {
                for i in 0..5 {
                    let name = format!("loop{loop_no}:{i}");
                    store.run(&["tag", "unionmount-demo:latest", &name]);
                    store.run(&["rmi", &name]);
                }
            }));
        }
        jobs.push(s.spawn(|| {
            store.run(&["image", "prune", "-f"]);
        }));
        for job in jobs {
            job.join().expect("a concurrent command failed");
        }
    });

    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(store.root.join("index.json")).expect("read index.json"),
    )
    .expect("index.json parses");
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        let path = store.root.join("blobs/sha256").join(hex);
        std::fs::read(&path).unwrap_or_else(|e| panic!("blob {digest}: {e}"))
    };
    for entry in index["manifests"].as_array().expect("manifests") {
        let manifest: serde_json::Value =
            serde_json::from_slice(&blob(entry["digest"].as_str().expect("digest")))
                .expect("manifest parses");
        blob(
            manifest["config"]["digest"]
                .as_str()
                .expect("config digest"),
        );
        for layer in manifest["layers"].as_array().expect("layers") {
            blob(layer["digest"].as_str().expect("layer digest"));
        }
    }
    assert_eq!(store.names(), ["demo-oci:latest", "unionmount-demo:latest"]);
    for (i, name) in store.names().iter().enumerate() {
        store.inspect(name, "{{.Id}}");
        let mnt = store.mountpoint(&format!("mnt{i}"));
        let mounted = store.mount(&["--read-only"], name, &mnt);
        assert!(files(&mnt).contains_key("etc/app/config.toml"), "{name}");
        mounted.umount();
    }
}

/// An image that is not there: one line naming it, exit 1, for every command taking one.
#[test]
fn unknown_image_is_a_one_line_error() {
    let store = Store::new();
    store.pull_demo();
    let mnt = store.mountpoint("mnt");
    let mnt = mnt.to_str().expect("utf-8");
    let archive = store.path("out.tar");
    let archive = archive.to_str().expect("utf-8");
    for args in [
        vec!["mount", "nope:latest", mnt],
        vec!["inspect", "nope:latest"],
        vec!["rmi", "nope:latest"],
        vec!["history", "nope:latest"],
        vec!["tag", "nope:latest", "other:1"],
        vec!["save", "-o", archive, "nope:latest"],
    ] {
        let out = store.try_run(&args);
        assert!(!is_fuse_mount(Path::new(mnt)), "{args:?} mounted");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert_eq!(
            out.stderr, "unionmount: image \"nope:latest\" not found\n",
            "{args:?}"
        );
    }
}

/// A name that is not a valid NAME[:TAG] is a usage error (exit 2), and names nothing.
#[test]
fn bad_name_for_tag_is_a_usage_error() {
    let store = Store::new();
    store.pull_demo();
    for bad in ["Bad Name", "name:", "name:-tag", "a//b", ""] {
        let out = store.try_run(&["tag", "demo-oci", bad]);
        assert_eq!(out.status.code(), Some(2), "tag demo-oci {bad:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{bad:?}: {}", out.stderr);
    }
    assert_eq!(store.names(), ["demo-oci:latest"]);
}

/// Docker refuses upper-case repository names and `::`; so should the store (the error
/// message already says "lowercase").
#[test]
fn upper_case_and_double_colon_names_are_refused() {
    let store = Store::new();
    store.pull_demo();
    for bad in ["UPPER:x", "a::b", "Demo"] {
        let out = store.try_run(&["tag", "demo-oci", bad]);
        assert_eq!(out.status.code(), Some(2), "tag demo-oci {bad:?}: {out:?}");
    }
    assert_eq!(store.names(), ["demo-oci:latest"]);
}

/// save → load into another store gives the same image ID and tag.
#[test]
fn save_then_load_keeps_the_image_id() {
    let store = Store::new();
    store.pull_demo();
    let archive = store.path("saved.tar");
    store.run(&[
        "save",
        "-o",
        archive.to_str().expect("utf-8"),
        "demo-oci:latest",
    ]);
    let other = Store::new();
    let loaded = other.run(&["load", "-i", archive.to_str().expect("utf-8")]);
    assert_eq!(loaded, "Loaded image: demo-oci:latest\n");
    let id = |s: &Store| s.inspect("demo-oci:latest", "{{.Id}}");
    assert_eq!(id(&other), id(&store));
}

/// export of an image is one tar of its merged tree; import of it is a one-layer image whose
/// mount has the same files.
#[test]
fn export_then_import_gives_a_one_layer_image_with_the_same_files() {
    if !root_or_skip() {
        return;
    }
    let store = Store::new();
    store.pull_demo();
    let tarball = store.path("rootfs.tar");
    let tarball_s = tarball.to_str().expect("utf-8");
    store.run(&["export", "demo-oci:latest", "-o", tarball_s]);
    let listing = Command::new("tar")
        .args(["-tf", tarball_s])
        .output()
        .expect("run tar");
    assert!(listing.status.success());
    let members: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect();
    for want in [
        "etc/motd",
        "etc/app/config.toml",
        "opt/app/VERSION",
        "bin/hello",
    ] {
        assert!(
            members.iter().any(|m| m == want),
            "{want} not in {members:?}"
        );
    }
    for gone in ["etc/hostname", "usr/share/doc", "var/cache/old.txt"] {
        assert!(
            !members.iter().any(|m| m == gone),
            "{gone} exported: {members:?}"
        );
    }

    store.run(&["import", tarball_s, "flat:1", "-c", "CMD [\"sh\"]"]);
    let layers = store.inspect("flat:1", "{{range .RootFS.Layers}}{{.}}{{\"\\n\"}}{{end}}");
    assert_eq!(layers.lines().count(), 1, "{layers}");
    assert_eq!(store.inspect("flat:1", "{{json .Config.Cmd}}"), r#"["sh"]"#);

    let demo = store.mount(&["--read-only"], "demo-oci", &store.mountpoint("demo"));
    let flat = store.mount(&["--read-only"], "flat:1", &store.mountpoint("flat"));
    assert_same_files(
        "imported export vs the image",
        &files(&demo.mnt),
        &files(&flat.mnt),
    );
    flat.umount();
    demo.umount();
}

/// A read-only mount of a store image uses its blobs as much as a writable one: rmi should
/// refuse it without -f, and ps should list it.
#[test]
fn read_only_mount_protects_its_image() {
    if !root_or_skip() {
        return;
    }
    let store = Store::new();
    store.pull_demo();
    let mounted = store.mount(&["--read-only"], "demo-oci", &store.mountpoint("mnt"));
    let listed = store.run(&["ps", "-q"]);
    let refused = store.try_run(&["rmi", "demo-oci"]);
    mounted.umount();
    assert!(listed.contains("mnt"), "ps -q: {listed:?}");
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
}

/// `umount` then `rmi` in a script: the image is no longer mounted, so rmi must not refuse.
#[test]
fn rmi_right_after_umount_is_not_refused() {
    if !root_or_skip() {
        return;
    }
    let store = Store::new();
    let mnt = store.mountpoint("mnt");
    for round in 0..100 {
        store.pull_demo();
        store.mount(&[], "demo-oci", &mnt).umount();
        let out = store.try_run(&["rmi", "demo-oci"]);
        assert!(out.status.success(), "round {round}: {}", out.stderr);
    }
}

/// An image's size is what its layers unpack to, whether or not it still has a name.
#[test]
fn dangling_image_keeps_its_size() {
    let store = Store::new();
    store.pull_demo();
    let id = store.inspect("demo-oci", "{{.Id}}");
    let size = store.inspect(&id, "{{.Size}}");
    store.run(&["squash", "demo-oci", "flat:1"]);
    store.run(&["tag", "flat:1", "demo-oci:latest"]);
    assert_eq!(store.inspect(&id, "{{.Size}}"), size);
}

/// `image prune` while an `import` copies its tarball in: the import must still succeed.
#[test]
fn prune_does_not_break_a_running_import() {
    let store = Store::new();
    store.run(&["images"]);
    let tarball = store.tarball("big", &pseudo_random(64 << 20, 7));
    let done = std::sync::atomic::AtomicBool::new(false);
    let import = std::thread::scope(|s| {
        let import = s.spawn(|| {
            let out = store.try_run(&["import", tarball.to_str().expect("utf-8"), "big:1"]);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            out
        });
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            store.run(&["image", "prune", "-f"]);
        }
        import.join().expect("import thread")
    });
    assert!(import.status.success(), "import: {}", import.stderr);
}

/// `ps -a` lists a mount's state after it is unmounted (its upper keeps the changes), the
/// next mount of the same image there shows them again, and `rm` removes the state: live
/// only with `-f`, which unmounts first.
#[test]
fn mount_state_outlives_the_mount_until_rm() {
    if !root_or_skip() {
        return;
    }
    let store = Store::new();
    store.pull_demo();
    let mnt = store.mountpoint("mnt");
    let mounted = store.mount(&[], "demo-oci:latest", &mnt);
    std::fs::write(mnt.join("kept"), "changed").expect("write");
    store.umount(mounted);
    let mnt_text = mnt.to_str().expect("utf-8");
    assert_eq!(store.run(&["ps", "-q"]).trim(), "", "no live mount");
    assert_eq!(store.run(&["ps", "-a", "-q"]).trim(), mnt_text);
    let mounted = store.mount(&[], "demo-oci:latest", &mnt);
    assert_eq!(
        std::fs::read_to_string(mnt.join("kept")).expect("kept"),
        "changed"
    );

    let refused = store.try_run(&["rm", mnt_text]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(refused.stderr.contains("use -f"), "{}", refused.stderr);
    store.run(&["rm", "-f", mnt_text]);
    assert!(
        !std::fs::read_to_string("/proc/mounts")
            .expect("mounts")
            .contains(mnt_text),
        "rm -f unmounts"
    );
    drop(mounted);
    assert_eq!(store.run(&["ps", "-a", "-q"]).trim(), "");
    assert_eq!(
        std::fs::read_dir(store.root.join("mounts"))
            .expect("mounts")
            .count(),
        0,
        "the upper is gone"
    );
    // A new mount starts from the image again.
    let mounted = store.mount(&[], "demo-oci:latest", &mnt);
    assert!(!mnt.join("kept").exists());
    store.umount(mounted);
}
