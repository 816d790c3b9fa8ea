//! The one place with `unsafe` in the tar layer: a small safe wrapper over zlib-rs's zlib C API
//! (`libz-rs-sys`), for the three calls random access into a gzip stream needs and the Rust
//! API does not offer: `Z_BLOCK` (stop at deflate block boundaries), `inflatePrime` (feed the
//! partial byte a checkpoint starts in) and `inflateSetDictionary` (restore the 32 KiB window),
//! as zlib's own `examples/zran.c` does.

use std::ffi::CStr;
use std::io;

use libz_rs_sys as z;

/// What the inflater expects at its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wrap {
    /// A gzip member: header, deflate data, CRC-32 and length trailer (both checked).
    Gzip,
    /// Bare deflate data, entered mid-stream at a checkpoint.
    Raw,
}

impl Wrap {
    fn window_bits(self) -> i32 {
        match self {
            // 16 + 15: gzip wrapper only (not zlib), 32 KiB window.
            Wrap::Gzip => 31,
            Wrap::Raw => -15,
        }
    }
}

/// The outcome of one [`Inflater::inflate`] call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    /// Input bytes consumed.
    pub read: usize,
    /// Output bytes produced.
    pub written: usize,
    /// The deflate stream (raw) or gzip member (gzip) ended.
    pub end: bool,
    /// Stopped at a block boundary that is not after the last block (only with `block`).
    pub at_block: bool,
    /// Bits of the consumed input not used yet (they belong to the next block).
    pub pending_bits: u32,
}

/// A zlib-rs inflate stream. The `z_stream` is boxed because zlib keeps a pointer back to it
/// in its state and refuses calls through a moved copy.
pub(crate) struct Inflater {
    strm: Box<z::z_stream>,
}

// SAFETY: the z_stream owns its state exclusively (no thread-local or shared data), and the
// raw pointers it holds into caller buffers are reset to null after every call.
unsafe impl Send for Inflater {}

impl Inflater {
    pub(crate) fn new(wrap: Wrap) -> io::Result<Inflater> {
        // `default()` installs zlib-rs's Rust allocator.
        let mut strm = Box::new(z::z_stream::default());
        let size = std::mem::size_of::<z::z_stream>() as i32;
        // SAFETY: `strm` is a valid, initialised z_stream with allocator callbacks set;
        // `zlibVersion()` is a NUL-terminated static string.
        let ret =
            unsafe { z::inflateInit2_(&mut *strm, wrap.window_bits(), z::zlibVersion(), size) };
        check(ret, &strm, "inflateInit2")?;
        Ok(Inflater { strm })
    }

    /// Starts over (new member, or a checkpoint), keeping the allocated window.
    pub(crate) fn reset(&mut self, wrap: Wrap) -> io::Result<()> {
        // SAFETY: the stream was initialised by `inflateInit2_` in `new`.
        let ret = unsafe { z::inflateReset2(&mut *self.strm, wrap.window_bits()) };
        check(ret, &self.strm, "inflateReset2")
    }

    /// Feeds the low `bits` bits of `value` as if they were the rest of an input byte.
    pub(crate) fn prime(&mut self, bits: u32, value: u8) -> io::Result<()> {
        // SAFETY: initialised stream; zlib checks `bits` against its bit buffer.
        let ret = unsafe {
            z::inflatePrime(&mut *self.strm, bits as i32, i32::from(value) >> (8 - bits))
        };
        check(ret, &self.strm, "inflatePrime")
    }

    /// Sets the history a raw stream entered mid-way refers back to.
    pub(crate) fn set_dictionary(&mut self, dict: &[u8]) -> io::Result<()> {
        // SAFETY: initialised stream; `dict` is a live slice of `dict.len()` bytes (at most
        // 32 KiB, so the length fits in a c_uint), copied by zlib before returning.
        let ret =
            unsafe { z::inflateSetDictionary(&mut *self.strm, dict.as_ptr(), dict.len() as u32) };
        check(ret, &self.strm, "inflateSetDictionary")
    }

    /// Inflates from `input` into `output`. With `block`, stops at the end of each deflate
    /// block so that the caller can place a checkpoint there.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        output: &mut [u8],
        block: bool,
    ) -> io::Result<Step> {
        let in_len = input.len().min(u32::MAX as usize);
        let out_len = output.len().min(u32::MAX as usize);
        self.strm.next_in = input.as_ptr();
        self.strm.avail_in = in_len as u32;
        self.strm.next_out = output.as_mut_ptr();
        self.strm.avail_out = out_len as u32;
        let flush = if block { z::Z_BLOCK } else { z::Z_NO_FLUSH };
        // SAFETY: initialised stream; next_in/avail_in and next_out/avail_out describe the
        // live `input` and `output` slices, which outlive the call.
        let ret = unsafe { z::inflate(&mut *self.strm, flush) };
        let read = in_len - self.strm.avail_in as usize;
        let written = out_len - self.strm.avail_out as usize;
        self.strm.next_in = std::ptr::null();
        self.strm.avail_in = 0;
        self.strm.next_out = std::ptr::null_mut();
        self.strm.avail_out = 0;
        let end = match ret {
            z::Z_STREAM_END => true,
            // No progress possible: more input or more output needed; the caller tells which.
            z::Z_OK | z::Z_BUF_ERROR => false,
            z::Z_NEED_DICT => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the deflate stream asks for a preset dictionary",
                ));
            }
            _ => return Err(error(ret, &self.strm, "inflate")),
        };
        // zlib-rs: bits 0-5 count the bits left in its bit buffer, 64 marks the last block,
        // 128 a stop at a block boundary (zlib documents the same layout with 3 bit-count bits).
        let dt = self.strm.data_type;
        Ok(Step {
            read,
            written,
            end,
            at_block: dt & 128 != 0 && dt & 64 == 0,
            pending_bits: (dt & 63) as u32,
        })
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, ended exactly once here.
        unsafe {
            z::inflateEnd(&mut *self.strm);
        }
    }
}

fn check(ret: i32, strm: &z::z_stream, call: &str) -> io::Result<()> {
    if ret == z::Z_OK {
        Ok(())
    } else {
        Err(error(ret, strm, call))
    }
}

fn error(ret: i32, strm: &z::z_stream, call: &str) -> io::Error {
    let msg = if strm.msg.is_null() {
        format!("zlib error {ret}")
    } else {
        // SAFETY: zlib sets `msg` to a static NUL-terminated string or leaves it null.
        unsafe { CStr::from_ptr(strm.msg) }
            .to_string_lossy()
            .into_owned()
    };
    io::Error::new(io::ErrorKind::InvalidData, format!("{call}: {msg}"))
}
