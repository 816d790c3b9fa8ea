//! The fuse-overlayfs / overlayfs option spelling:
//! `-o lowerdir=TOP:MIDDLE:BOTTOM[,upperdir=U,workdir=W][,other...]`.
//!
//! containers/storage calls a `mount_program` as
//! `PROG -o lowerdir=...,upperdir=...,workdir=...,,volatile MERGED` (note the empty option),
//! so empty options are ignored; unknown ones are refused by name rather than silently
//! dropped. As in overlayfs, `\` escapes a `:` or `,` inside a path.

use std::path::PathBuf;

use super::CliError;
use crate::layer::LayerOptions;
use crate::layer::blob::LayerSource;
use crate::mount::{MountConfig, MountFlag, UpperDirs};

/// Splits `s` at unescaped `sep`, removing the escaping backslashes of `sep` and `\\`.
fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) if n == sep || n == '\\' => parts.last_mut().unwrap().push(n),
                Some(n) => {
                    let last = parts.last_mut().unwrap();
                    last.push('\\');
                    last.push(n);
                }
                None => parts.last_mut().unwrap().push('\\'),
            },
            c if c == sep => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

/// Splits one `-o` argument into options, keeping `\,` inside a value.
fn split_options(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let last = parts.last_mut().unwrap();
                last.push('\\');
                if let Some(n) = chars.next() {
                    last.push(n);
                }
            }
            ',' => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

/// Parses every `-o` argument into a mount configuration.
pub fn parse(
    options: &[String],
    mountpoint: PathBuf,
    foreground: bool,
) -> Result<MountConfig, CliError> {
    let usage = |m: String| CliError::Usage(m);
    let mut lower: Option<Vec<LayerSource>> = None;
    let mut fsname = "unionmount".to_string();
    let mut flags = Vec::new();
    let mut allow_other = rustix::process::geteuid().is_root();
    let (mut upper, mut work): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    let mut read_only = false;
    for opt in options.iter().flat_map(|o| split_options(o)) {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (opt.clone(), None),
        };
        match (key.as_str(), value) {
            ("", None) => {}
            ("lowerdir", Some(v)) => {
                let dirs: Vec<PathBuf> = split_escaped(&v, ':')
                    .into_iter()
                    .map(|p| PathBuf::from(p.replace("\\,", ",")))
                    .collect();
                if dirs.iter().any(|d| d.as_os_str().is_empty()) {
                    return Err(usage(format!("lowerdir={v}: empty layer path")));
                }
                lower = Some(dirs.into_iter().map(LayerSource::Path).collect());
            }
            ("upperdir", Some(v)) if !v.is_empty() => upper = Some(PathBuf::from(v)),
            ("workdir", Some(v)) if !v.is_empty() => work = Some(PathBuf::from(v)),
            ("upperdir" | "workdir", Some(_)) => {
                return Err(usage(format!("{key}=: empty path")));
            }
            ("fsname", Some(v)) => fsname = v,
            ("nodev", None) => flags.push(MountFlag::NoDev),
            ("nosuid", None) => flags.push(MountFlag::NoSuid),
            ("noexec", None) => flags.push(MountFlag::NoExec),
            ("noatime", None) => flags.push(MountFlag::NoAtime),
            ("allow_other", None) => allow_other = true,
            ("allow_root", None) => allow_other = true,
            // Always on, or meaningless for a read-only union.
            ("ro", None) => read_only = true,
            ("default_permissions" | "dev" | "suid" | "exec" | "atime", None) => {}
            ("relatime" | "strictatime" | "volatile" | "sync" | "async", None) => {}
            ("rw", None) => read_only = false,
            ("context" | "fscontext" | "defcontext" | "rootcontext", Some(_)) => {}
            (k, Some(_)) => return Err(usage(format!("unknown mount option {k}="))),
            (k, None) => return Err(usage(format!("unknown mount option {k}"))),
        }
    }
    let Some(mut layers) = lower else {
        return Err(usage("-o needs lowerdir=TOP:...:BOTTOM".into()));
    };
    let upper = match (upper, work) {
        (None, None) => None,
        (Some(_), None) => return Err(usage("upperdir= needs workdir= too".into())),
        (None, Some(_)) => return Err(usage("workdir= needs upperdir= too".into())),
        // `ro` with an upper: the upper is shown as the top layer and never written.
        (Some(u), Some(_)) if read_only => {
            layers.insert(0, LayerSource::Path(u));
            None
        }
        (Some(u), Some(w)) => Some(UpperDirs::new(u, w).map_err(usage)?),
    };
    Ok(MountConfig {
        layers,
        layer_options: LayerOptions::default(),
        mountpoint,
        foreground,
        upper,
        fsname,
        flags,
        allow_other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> Result<MountConfig, CliError> {
        let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        parse(&opts, PathBuf::from("/mnt"), false)
    }

    #[test]
    fn lowerdir_is_top_first_and_empty_options_are_ignored() {
        let c = p(&["lowerdir=/a:/b\\:c:/d,,noatime"]).unwrap();
        let paths = |c: &MountConfig| -> Vec<PathBuf> {
            c.layers
                .iter()
                .map(|l| match l {
                    LayerSource::Path(p) => p.clone(),
                    LayerSource::Blob(_) => panic!("-o gives paths"),
                })
                .collect()
        };
        assert_eq!(
            paths(&c),
            vec![
                PathBuf::from("/a"),
                PathBuf::from("/b:c"),
                PathBuf::from("/d")
            ]
        );
        assert_eq!(c.flags, vec![MountFlag::NoAtime]);
        let c = p(&["lowerdir=/x\\,y", "nodev"]).unwrap();
        assert_eq!(paths(&c), vec![PathBuf::from("/x,y")]);
    }

    #[test]
    fn unknown_and_unsupported_options_are_refused_by_name() {
        let e = p(&["lowerdir=/a,frobnicate"]).unwrap_err().to_string();
        assert!(e.contains("frobnicate"), "{e}");
        let e = p(&["lowerdir=/a,upperdir=/nonexistent-u,workdir=/nonexistent-w"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("upperdir=/nonexistent-u: does not exist"), "{e}");
        assert!(p(&["noatime"]).is_err());
        assert!(p(&["lowerdir=/a::/b"]).is_err());
    }

    #[test]
    fn upper_and_work_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let (u, w) = (tmp.path().join("u"), tmp.path().join("w"));
        std::fs::create_dir_all(u.join("inside")).unwrap();
        std::fs::create_dir(&w).unwrap();
        std::fs::write(tmp.path().join("f"), b"").unwrap();
        let opt = |u: &std::path::Path, w: &std::path::Path| {
            format!(
                "lowerdir=/a,upperdir={},workdir={}",
                u.display(),
                w.display()
            )
        };
        let c = p(&[&opt(&u, &w), ",volatile,"]).unwrap();
        assert_eq!(
            c.upper,
            Some(UpperDirs {
                upper: u.clone(),
                work: w.clone()
            })
        );
        let e = p(&[&opt(&u, &u.join("inside"))]).unwrap_err().to_string();
        assert!(e.contains("inside one another"), "{e}");
        let e = p(&[&opt(&u, &tmp.path().join("f"))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a directory"), "{e}");
        let e = p(&[&format!("lowerdir=/a,upperdir={}", u.display())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("workdir"), "{e}");
        // `ro`: the upper is only the top layer.
        let c = p(&[&opt(&u, &w), "ro"]).unwrap();
        assert_eq!(c.upper, None);
        assert_eq!(c.layers.len(), 2);
        if std::path::Path::new("/dev/shm").is_dir() {
            let shm = tempfile::tempdir_in("/dev/shm").unwrap();
            if std::fs::metadata("/dev/shm")
                .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
                .ok()
                != std::fs::metadata(tmp.path())
                    .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
                    .ok()
            {
                let e = p(&[&opt(&u, shm.path())]).unwrap_err().to_string();
                assert!(e.contains("same filesystem"), "{e}");
            }
        }
    }
}
