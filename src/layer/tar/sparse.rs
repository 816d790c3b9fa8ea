//! Sparse files: decoding the GNU and PAX sparse maps, and reading through them.
//!
//! A sparse entry stores only its data chunks, back to back; the map says where each chunk sits
//! in the real file and everything else reads as zeros. Three encodings are decoded (GNU tar
//! manual, "Storing Sparse Files"):
//! - old GNU (type `S`): four map slots in the header, then 512-byte extension blocks of 21
//!   slots each while `isextended` is set. The `tar` crate validates this map but only exposes
//!   it through its own streaming reader, and its `raw_file_position` points at the extension
//!   blocks, not at the data, so we re-read the blocks ourselves to find where the data starts.
//! - PAX 1.0 (`GNU.sparse.major=1`, `minor=0`): the map is decimal text at the start of the
//!   entry's data (count, then offset/length pairs, one number per line), padded to 512 bytes.
//! - PAX 0.1: the map is the `GNU.sparse.map` record, `offset,length,...`.
//!
//! Every map is validated before use: chunks in order, non-overlapping, inside the real size,
//! and inside the stored data.

use std::io;

use tar::{GnuExtSparseHeader, GnuHeader};

use super::stream::Stream;

const BLOCK: u64 = 512;

/// One stored data chunk of a sparse file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Chunk {
    /// Offset in the real file.
    logical: u64,
    len: u64,
    /// Offset of the chunk's bytes in the uncompressed stream.
    stored: u64,
}

/// A validated sparse map.
#[derive(Debug)]
pub(crate) struct SparseMap {
    chunks: Box<[Chunk]>,
    real_size: u64,
}

impl SparseMap {
    /// Builds a map from `(offset, length)` extents whose data is stored back to back from
    /// `data_start`, within `data_len` bytes of stored data.
    pub(crate) fn new(
        extents: &[(u64, u64)],
        real_size: u64,
        data_start: u64,
        data_len: u64,
    ) -> Result<SparseMap, String> {
        let mut chunks = Vec::with_capacity(extents.len());
        let mut logical_end = 0u64;
        let mut stored = 0u64;
        for &(off, len) in extents {
            // GNU tar ends its maps with an empty chunk at the real size: it only marks the end.
            if len == 0 {
                if off > real_size {
                    return Err(format!(
                        "sparse chunk at {off} lies past the real size {real_size}"
                    ));
                }
                continue;
            }
            if off < logical_end {
                return Err(format!(
                    "sparse chunks out of order or overlapping at offset {off}"
                ));
            }
            let end = off
                .checked_add(len)
                .filter(|&e| e <= real_size)
                .ok_or_else(|| {
                    format!("sparse chunk {off}+{len} ends past the real size {real_size}")
                })?;
            let stored_end = stored
                .checked_add(len)
                .filter(|&e| e <= data_len)
                .ok_or_else(|| {
                    format!("sparse chunks need more than the {data_len} stored bytes")
                })?;
            chunks.push(Chunk {
                logical: off,
                len,
                stored: data_start + stored,
            });
            logical_end = end;
            stored = stored_end;
        }
        Ok(SparseMap {
            chunks: chunks.into_boxed_slice(),
            real_size,
        })
    }

    /// Bytes actually stored in the archive (what `st_blocks` should count).
    pub(crate) fn stored_len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len).sum()
    }

    /// Reads the real file's bytes at `offset`: chunk data from the stream, zeros in holes.
    pub(crate) fn read_at(
        &self,
        stream: &dyn Stream,
        buf: &mut [u8],
        offset: u64,
    ) -> io::Result<usize> {
        if offset >= self.real_size {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.real_size - offset).unwrap_or(usize::MAX));
        let buf = &mut buf[..want];
        let mut done = 0usize;
        // The first chunk that ends after `offset`; chunks are sorted and disjoint.
        let mut i = self.chunks.partition_point(|c| c.logical + c.len <= offset);
        while done < want {
            let pos = offset + done as u64;
            let rest = &mut buf[done..];
            match self.chunks.get(i) {
                Some(c) if c.logical <= pos => {
                    let within = pos - c.logical;
                    let n = rest
                        .len()
                        .min(usize::try_from(c.len - within).unwrap_or(usize::MAX));
                    stream.read_exact_at(&mut rest[..n], c.stored + within)?;
                    done += n;
                    i += 1;
                }
                Some(c) => {
                    let n = rest
                        .len()
                        .min(usize::try_from(c.logical - pos).unwrap_or(usize::MAX));
                    rest[..n].fill(0);
                    done += n;
                }
                None => {
                    rest.fill(0);
                    done = want;
                }
            }
        }
        Ok(want)
    }
}

impl SparseMap {
    /// The map as [`SparseMap::new`] takes it back: real size, where the stored data starts,
    /// and the `(offset, length)` extents (end markers dropped). Chunks are always stored back
    /// to back, so these are the whole map.
    pub(crate) fn saved_form(&self) -> (u64, u64, impl Iterator<Item = (u64, u64)> + '_) {
        let start = self.chunks.first().map_or(0, |c| c.stored);
        (
            self.real_size,
            start,
            self.chunks.iter().map(|c| (c.logical, c.len)),
        )
    }
}

/// The extents of an old GNU sparse entry (type `S`): the header's slots, then the extension
/// blocks starting at `ext_start`. Returns the extents and the bytes the extension blocks take
/// (the data starts right after them).
pub(crate) fn gnu_old_extents(
    gnu: &GnuHeader,
    stream: &dyn Stream,
    ext_start: u64,
) -> Result<(Vec<(u64, u64)>, u64), String> {
    let mut extents = Vec::new();
    let mut push = |slot: &tar::GnuSparseHeader| -> Result<(), String> {
        if !slot.is_empty() {
            let off = slot.offset().map_err(|e| e.to_string())?;
            let len = slot.length().map_err(|e| e.to_string())?;
            extents.push((off, len));
        }
        Ok(())
    };
    for slot in &gnu.sparse {
        push(slot)?;
    }
    let mut consumed = 0u64;
    let mut more = gnu.is_extended();
    while more {
        let mut ext = GnuExtSparseHeader::new();
        stream
            .read_exact_at(ext.as_mut_bytes(), ext_start + consumed)
            .map_err(|e| format!("reading sparse extension block: {e}"))?;
        consumed += BLOCK;
        for slot in &ext.sparse {
            push(slot)?;
        }
        more = ext.is_extended();
    }
    Ok((extents, consumed))
}

/// The extents of a PAX 1.0 sparse entry, read from the start of its data (`data_start`,
/// `stored` bytes). Returns the extents and the bytes the map takes, padded to 512.
pub(crate) fn pax_v1_extents(
    stream: &dyn Stream,
    data_start: u64,
    stored: u64,
) -> Result<(Vec<(u64, u64)>, u64), String> {
    let mut text = MapText {
        stream,
        start: data_start,
        limit: stored,
        buf: Vec::new(),
        pos: 0,
    };
    let count = text.number()?;
    // Each pair needs at least four bytes of text ("0\n0\n"): a bigger count cannot be real,
    // and checking first keeps a hostile count from reserving memory.
    if count > stored / 4 {
        return Err(format!(
            "sparse map claims {count} chunks in {stored} bytes"
        ));
    }
    let mut extents = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let off = text.number()?;
        let len = text.number()?;
        extents.push((off, len));
    }
    let used = (text.pos as u64).div_ceil(BLOCK) * BLOCK;
    if used > stored {
        return Err("sparse map runs past the entry's data".into());
    }
    Ok((extents, used))
}

/// Newline-terminated decimal numbers read lazily from the stream.
struct MapText<'a> {
    stream: &'a dyn Stream,
    start: u64,
    limit: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl MapText<'_> {
    fn number(&mut self) -> Result<u64, String> {
        loop {
            if let Some(nl) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let digits = &self.buf[self.pos..self.pos + nl];
                self.pos += nl + 1;
                return super::pax::parse_u64(digits).ok_or_else(|| {
                    format!(
                        "bad number {:?} in sparse map",
                        String::from_utf8_lossy(&digits[..digits.len().min(32)])
                    )
                });
            }
            // A number is at most 20 digits: anything longer without a newline is garbage.
            if self.buf.len() - self.pos > 24 {
                return Err("bad line in sparse map".into());
            }
            let have = self.buf.len() as u64;
            if have >= self.limit {
                return Err("sparse map runs past the entry's data".into());
            }
            let n = (self.limit - have).min(4096) as usize;
            let old = self.buf.len();
            self.buf.resize(old + n, 0);
            self.stream
                .read_exact_at(&mut self.buf[old..], self.start + have)
                .map_err(|e| format!("reading sparse map: {e}"))?;
        }
    }
}

/// The extents of a PAX 0.1 sparse entry from its `GNU.sparse.map` record.
pub(crate) fn pax_v01_extents(map: &[u8]) -> Result<Vec<(u64, u64)>, String> {
    if map.is_empty() {
        return Ok(Vec::new());
    }
    let numbers = map
        .split(|&b| b == b',')
        .map(super::pax::parse_u64)
        .collect::<Option<Vec<u64>>>()
        .ok_or("bad number in GNU.sparse.map")?;
    if numbers.len() % 2 != 0 {
        return Err("odd count of numbers in GNU.sparse.map".into());
    }
    Ok(numbers.chunks(2).map(|p| (p[0], p[1])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes(Vec<u8>);
    impl Stream for Bytes {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let start = (offset as usize).min(self.0.len());
            let n = buf.len().min(self.0.len() - start);
            buf[..n].copy_from_slice(&self.0[start..start + n]);
            Ok(n)
        }
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
    }

    #[test]
    fn validates_maps() {
        assert!(
            SparseMap::new(&[(0, 10), (5, 10)], 100, 0, 100).is_err(),
            "overlap"
        );
        assert!(
            SparseMap::new(&[(50, 10), (0, 10)], 100, 0, 100).is_err(),
            "order"
        );
        assert!(
            SparseMap::new(&[(95, 10)], 100, 0, 100).is_err(),
            "past real size"
        );
        assert!(
            SparseMap::new(&[(0, 10), (20, 10)], 100, 0, 15).is_err(),
            "past stored data"
        );
        assert!(
            SparseMap::new(&[(u64::MAX, 10)], 100, 0, 100).is_err(),
            "overflow"
        );
        let m = SparseMap::new(&[(0, 2), (10, 3), (100, 0)], 100, 0, 5).unwrap();
        assert_eq!(m.stored_len(), 5);
    }

    #[test]
    fn reads_holes_as_zeros() {
        let data = Bytes(b"XXabcdeYY".to_vec());
        // "ab" at 4, "cde" at 10, real size 16; data stored from byte 2.
        let m = SparseMap::new(&[(4, 2), (10, 3)], 16, 2, 5).unwrap();
        let mut buf = [0xffu8; 32];
        assert_eq!(m.read_at(&data, &mut buf, 0).unwrap(), 16);
        assert_eq!(&buf[..16], b"\0\0\0\0ab\0\0\0\0cde\0\0\0");
        let mut one = [0xffu8; 3];
        assert_eq!(m.read_at(&data, &mut one, 5).unwrap(), 3);
        assert_eq!(&one, b"b\0\0");
        assert_eq!(m.read_at(&data, &mut one, 11).unwrap(), 3);
        assert_eq!(&one, b"de\0");
        assert_eq!(m.read_at(&data, &mut one, 16).unwrap(), 0);
    }

    #[test]
    fn parses_pax_maps() {
        let mut text = b"2\n0\n512\n4096\n10\n".to_vec();
        text.resize(512 + 600, b'd');
        let s = Bytes(text);
        let (ext, used) = pax_v1_extents(&s, 0, 1112).unwrap();
        assert_eq!(ext, vec![(0, 512), (4096, 10)]);
        assert_eq!(used, 512);
        assert!(pax_v1_extents(&Bytes(b"99999\n".to_vec()), 0, 6).is_err());
        assert!(pax_v1_extents(&Bytes(b"1\n0\n".to_vec()), 0, 4).is_err());
        assert!(pax_v1_extents(&Bytes(vec![b'7'; 600]), 0, 600).is_err());
        assert_eq!(pax_v01_extents(b"0,5,10,0").unwrap(), vec![(0, 5), (10, 0)]);
        assert!(pax_v01_extents(b"0,5,10").is_err());
        assert!(pax_v01_extents(b"0,x").is_err());
    }
}
