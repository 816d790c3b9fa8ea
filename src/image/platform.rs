//! Platforms (`os/arch[/variant]`) and choosing one manifest of a multi-platform index.
//!
//! Names follow the OCI image index (`platform.architecture`, `platform.os`,
//! `platform.variant`), which are Go's `GOARCH`/`GOOS` values, so Rust's target names are
//! mapped (x86_64 is `amd64`, aarch64 is `arm64`, ...).

use std::fmt;

use super::oci::PlatformSpec;

/// A wanted platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// `GOARCH` for a Rust `target_arch` (and endianness), as the OCI platform names it.
fn oci_arch(rust_arch: &str, little_endian: bool) -> &str {
    match (rust_arch, little_endian) {
        ("x86_64", _) => "amd64",
        ("x86", _) => "386",
        ("aarch64", _) => "arm64",
        ("arm", _) => "arm",
        ("powerpc64", true) => "ppc64le",
        ("powerpc64", false) => "ppc64",
        ("mips64", true) => "mips64le",
        ("mips", true) => "mipsle",
        ("loongarch64", _) => "loong64",
        (other, _) => other, // s390x, riscv64, mips64, mips: same names
    }
}

impl Platform {
    /// This machine: linux and its architecture. The variant is left open (any variant of the
    /// architecture matches, the highest preferred), as Rust does not tell ARM v6 from v7 at
    /// run time.
    pub fn host() -> Platform {
        Platform {
            os: std::env::consts::OS.to_string(),
            arch: oci_arch(std::env::consts::ARCH, cfg!(target_endian = "little")).to_string(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`, as `--platform` takes it.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        };
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if valid(os) && valid(arch) => {
                let variant = match parts.get(2) {
                    Some(v) if valid(v) => Some(v.to_string()),
                    Some(v) => return Err(format!("platform {s:?}: invalid variant {v:?}")),
                    None => None,
                };
                Ok(Platform {
                    os: os.to_string(),
                    arch: arch.to_string(),
                    variant,
                })
            }
            _ => Err(format!(
                "platform {s:?}: want OS/ARCH[/VARIANT], e.g. linux/arm64 or linux/arm/v7"
            )),
        }
    }

    /// How well an index entry's platform fits: `None` if it does not, otherwise a rank where
    /// higher is better. An entry without a platform fits anything, worst.
    pub fn fit(&self, spec: Option<&PlatformSpec>) -> Option<u32> {
        let Some(spec) = spec else { return Some(0) };
        if spec.os != self.os || spec.architecture != self.arch {
            return None;
        }
        // arm64's only variant is v8, so it and "no variant" are the same thing.
        let norm = |v: Option<&str>| match (self.arch.as_str(), v) {
            ("arm64", Some("v8")) => None,
            (_, v) => v.map(str::to_string),
        };
        let have = norm(spec.variant.as_deref());
        match norm(self.variant.as_deref()) {
            Some(want) => (have.as_deref() == Some(want.as_str())).then_some(2),
            // Open variant: prefer the newest one (v8 > v7 > v6 > none).
            None => Some(
                1 + have
                    .as_deref()
                    .and_then(|v| v.strip_prefix('v'))
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(0),
            ),
        }
    }
}

/// The entry of an index that fits `platform` best (see [`Platform::fit`]); a list of one is
/// taken as it is.
pub fn best_fit<'a>(
    list: &'a [super::oci::Descriptor],
    platform: &Platform,
) -> Option<&'a super::oci::Descriptor> {
    if let [only] = list {
        return Some(only);
    }
    let mut best: Option<(u32, &super::oci::Descriptor)> = None;
    for d in list {
        if let Some(rank) = platform.fit(d.platform.as_ref())
            && best.is_none_or(|(r, _)| rank > r)
        {
            best = Some((rank, d));
        }
    }
    best.map(|(_, d)| d)
}

/// How an index entry's platform reads in messages.
pub fn describe(spec: Option<&PlatformSpec>) -> String {
    match spec {
        None => "(no platform)".into(),
        Some(p) => match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> PlatformSpec {
        let p = Platform::parse(s).unwrap();
        PlatformSpec {
            architecture: p.arch,
            os: p.os,
            variant: p.variant,
            os_version: None,
        }
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(Platform::parse("linux/amd64").unwrap().variant, None);
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "a/b/c/d",
            "linux/am d64",
            "linux/arm/",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_uses_oci_names() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        assert!(!["x86_64", "aarch64"].contains(&h.arch.as_str()));
        assert_eq!(oci_arch("x86_64", true), "amd64");
        assert_eq!(oci_arch("aarch64", true), "arm64");
        assert_eq!(oci_arch("powerpc64", true), "ppc64le");
    }

    #[test]
    fn fit_ranks_variants() {
        let arm = Platform::parse("linux/arm").unwrap();
        assert!(arm.fit(Some(&spec("linux/arm/v7"))) > arm.fit(Some(&spec("linux/arm/v6"))));
        assert_eq!(arm.fit(Some(&spec("linux/arm64"))), None);
        let v6 = Platform::parse("linux/arm/v6").unwrap();
        assert_eq!(v6.fit(Some(&spec("linux/arm/v7"))), None);
        assert!(v6.fit(Some(&spec("linux/arm/v6"))).is_some());
        let arm64 = Platform::parse("linux/arm64/v8").unwrap();
        assert!(arm64.fit(Some(&spec("linux/arm64"))).is_some());
        assert_eq!(
            Platform::parse("linux/amd64")
                .unwrap()
                .fit(Some(&spec("windows/amd64"))),
            None
        );
        assert_eq!(arm.fit(None), Some(0));
    }
}
