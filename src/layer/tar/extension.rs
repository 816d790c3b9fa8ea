//! The extension headers in front of an entry, re-read by us rather than through the crate.
//!
//! The `tar` crate consumes the PAX (`x`) and GNU long-name (`L`, `K`) headers that describe
//! the next entry before it yields that entry, and offers the PAX data only through an
//! iterator that splits it on newlines, which breaks on values holding a 0x0a byte. Those
//! headers sit between the end of the previous entry's data (rounded up to a block) and the
//! entry's own header, so the index walks that span itself through the [`Stream`] and hands
//! the PAX data to `pax::records`, which splits it by the records' length prefixes.

use super::stream::Stream;

const BLOCK: u64 = 512;

/// The most PAX data one entry may carry. Real headers hold a path, a few numbers and some
/// xattrs (a few KiB at most); anything larger is refused rather than read into memory.
pub(super) const MAX_PAX: u64 = 1 << 20;

/// What the extension headers in front of one entry hold.
#[derive(Debug, Default)]
pub(super) struct Extensions {
    /// The raw data of the `x` header, if there was one.
    pub pax: Option<Vec<u8>>,
    /// A GNU `L` header gave the path (the crate applies it, ahead of any PAX `path`).
    pub long_name: bool,
    /// A GNU `K` header gave the link target (likewise ahead of PAX `linkpath`).
    pub long_link: bool,
}

/// Reads the extension headers in `start..end` (`end` is the entry's own header). The crate
/// has already walked this span, so anything odd here means the two readers disagree about
/// the archive, which is reported rather than guessed around.
pub(super) fn read(stream: &dyn Stream, start: u64, end: u64) -> Result<Extensions, String> {
    let mut out = Extensions::default();
    let mut pos = start;
    while pos < end {
        let data = pos + BLOCK;
        if data > end {
            return Err(format!(
                "extension header at byte {pos} overlaps the entry's header at byte {end}"
            ));
        }
        let mut block = [0u8; BLOCK as usize];
        stream
            .read_exact_at(&mut block, pos)
            .map_err(|e| format!("reading the extension header at byte {pos}: {e}"))?;
        if !checksum_ok(&block) {
            return Err(format!("bad header checksum at byte {pos}"));
        }
        let size = tar::Header::from_byte_slice(&block)
            .entry_size()
            .map_err(|_| format!("extension header at byte {pos} has a bad size field"))?;
        let next = size
            .checked_add(BLOCK - 1)
            .map(|s| s / BLOCK * BLOCK)
            .and_then(|s| data.checked_add(s))
            .filter(|&n| n <= end)
            .ok_or_else(|| {
                format!("extension header at byte {pos} claims {size} bytes, past the entry")
            })?;
        match block[156] {
            b'x' => {
                if out.pax.is_some() {
                    return Err("two PAX headers describe one entry".into());
                }
                if size > MAX_PAX {
                    return Err(format!(
                        "PAX header of {size} bytes is larger than the limit of {MAX_PAX}"
                    ));
                }
                // `size <= MAX_PAX`, so it fits in memory and in usize.
                let mut pax = vec![0u8; size as usize];
                stream
                    .read_exact_at(&mut pax, data)
                    .map_err(|e| format!("reading the PAX header at byte {pos}: {e}"))?;
                out.pax = Some(pax);
            }
            b'L' => out.long_name = true,
            b'K' => out.long_link = true,
            other => {
                return Err(format!(
                    "unexpected header of type {:?} at byte {pos} before the entry",
                    char::from(other)
                ));
            }
        }
        pos = next;
    }
    Ok(out)
}

/// True if a 512-byte header's checksum field matches its bytes (POSIX ustar: the unsigned
/// sum of all bytes with the field itself counted as spaces; the field is octal, optionally
/// space-padded in front and ended by NUL or space).
pub(super) fn checksum_ok(block: &[u8]) -> bool {
    let Some(field) = block.get(148..156) else {
        return false;
    };
    let digits: &[u8] = {
        let start = field.iter().position(|&b| b != b' ').unwrap_or(field.len());
        let rest = &field[start..];
        let len = rest
            .iter()
            .take_while(|b| (b'0'..=b'7').contains(b))
            .count();
        if len == 0 || !rest[len..].iter().all(|&b| b == 0 || b == b' ') {
            return false;
        }
        &rest[..len]
    };
    let stored = digits
        .iter()
        .fold(0u64, |acc, &d| acc.saturating_mul(8) + u64::from(d - b'0'));
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    block.len() == BLOCK as usize && stored == sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_header_checksums() {
        let mut h = tar::Header::new_ustar();
        h.set_path("a").unwrap();
        h.set_cksum();
        assert!(checksum_ok(h.as_bytes()));
        let mut bad = *h.as_bytes();
        bad[0] ^= 1;
        assert!(!checksum_ok(&bad));
        assert!(!checksum_ok(&[0u8; 512]));
        assert!(!checksum_ok(&[b'\n'; 512]));
        assert!(!checksum_ok(b"short"));
    }
}
