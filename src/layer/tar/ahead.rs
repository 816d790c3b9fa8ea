//! The indexing pass's producer on a thread of its own, a few pieces ahead of the builder.
//!
//! Decompressing is most of a compressed layer's pass (zlib-rs inflate was 68% of the
//! samples of a 1.1 GiB gzip layer), and it does not depend on what the builder does with the
//! bytes. So the producer (reading the blob, hashing its stored bytes, inflating, taking
//! checkpoints) runs on a second core while the builder walks the tar, hashes the stream and
//! builds the index on the first, instead of one core doing both in turn.
//!
//! Memory stays bounded: at most [`PIECES`] produced pieces wait for the builder.

use std::io;
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError};
use std::thread::{Scope, ScopedJoinHandle};

use super::forward::{PRODUCE, Produce};

/// Pieces (of up to [`PRODUCE`] bytes) produced ahead of the builder.
const PIECES: usize = 4;

/// A piece of the stream (a buffer and where its new bytes start), or the producer's error.
/// A piece with no new bytes is the end.
type Piece = io::Result<(Vec<u8>, usize)>;

/// Bytes of earlier output a producer finds before what it appends (see [`Produce`]).
pub(crate) const TAIL: usize = 64 << 10;

/// A [`Produce`] whose producer runs on a scoped thread; [`Ahead::join`] gives it back once
/// the stream has ended (for its random-access state and its hash).
pub(crate) struct Ahead<'scope, P> {
    pieces: Option<Receiver<Piece>>,
    /// Emptied pieces go back to the producer to be filled again, so a pass of a gigabyte
    /// does not allocate (and fault in) a fresh megabyte per piece.
    spent: Sender<Vec<u8>>,
    /// What is left of the piece being handed out.
    current: Vec<u8>,
    at: usize,
    ended: bool,
    thread: Option<ScopedJoinHandle<'scope, P>>,
}

impl<'scope, P: Produce + 'scope> Ahead<'scope, P> {
    pub(crate) fn start<'env>(scope: &'scope Scope<'scope, 'env>, producer: P) -> Self {
        let (tx, pieces) = std::sync::mpsc::sync_channel(PIECES);
        let (spent, recycled) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("index-producer".into())
            .spawn_scoped(scope, move || produce_ahead(producer, tx, recycled));
        let (pieces, thread) = match thread {
            Ok(thread) => (pieces, Some(thread)),
            // No thread to be had (a process at its limit): the pass reports it as its error.
            Err(e) => {
                let (tx, pieces) = std::sync::mpsc::sync_channel(1);
                let _ = tx.send(Err(io::Error::other(format!(
                    "cannot start the indexing thread: {e}"
                ))));
                (pieces, None)
            }
        };
        Ahead {
            pieces: Some(pieces),
            spent,
            current: Vec::new(),
            at: 0,
            ended: false,
            thread,
        }
    }

    /// The producer, once the stream has ended.
    pub(crate) fn join(mut self) -> io::Result<P> {
        if !self.ended {
            return Err(io::Error::other(
                "the indexing pass stopped before the stream ended",
            ));
        }
        self.pieces = None;
        let thread = self
            .thread
            .take()
            .ok_or_else(|| io::Error::other("no producer"))?;
        thread
            .join()
            .map_err(|_| io::Error::other("the indexing thread panicked"))
    }
}

impl<P: Send> Produce for Ahead<'_, P> {
    fn produce(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        if self.at == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            let (next, start) = self
                .pieces
                .as_ref()
                .and_then(|rx| rx.recv().ok())
                .unwrap_or_else(|| Err(io::Error::other("the indexing thread ended early")))?;
            if start == next.len() {
                self.ended = true;
                return Ok(0);
            }
            let spent = std::mem::replace(&mut self.current, next);
            if spent.capacity() > 0 {
                let _ = self.spent.send(spent);
            }
            self.at = start;
        }
        let n = max.min(self.current.len() - self.at);
        out.extend_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl<P> Drop for Ahead<'_, P> {
    /// Stops a producer still running (the builder failed early): with the receiver gone its
    /// next piece has nowhere to go and it returns. Joined here, so the scope does not
    /// re-raise a panic of the thread.
    fn drop(&mut self) {
        self.pieces = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: each piece is produced into a buffer that starts with the last [`TAIL`] bytes
/// of the one before (the producer finds its recent output, the gzip checkpoints' 32 KiB
/// window, at the end of `out`); only the new bytes are handed out. Copying the tail costs
/// 64 KiB a piece, where keeping one long window cost a third of every byte in moves.
fn produce_ahead<P: Produce>(
    mut producer: P,
    pieces: SyncSender<Piece>,
    recycled: Receiver<Vec<u8>>,
) -> P {
    let mut tail: Vec<u8> = Vec::with_capacity(TAIL);
    loop {
        let mut buf = match recycled.try_recv() {
            Ok(mut v) => {
                v.clear();
                v
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                Vec::with_capacity(TAIL + PRODUCE)
            }
        };
        buf.extend_from_slice(&tail);
        let start = buf.len();
        let piece = match producer.produce(&mut buf, PRODUCE) {
            Ok(0) => {
                let _ = pieces.send(Ok((Vec::new(), 0)));
                return producer;
            }
            Ok(_) => {
                tail.clear();
                tail.extend_from_slice(&buf[buf.len().saturating_sub(TAIL)..]);
                Ok((buf, start))
            }
            Err(e) => Err(e),
        };
        let failed = piece.is_err();
        if pieces.send(piece).is_err() || failed {
            return producer;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte `i` of the test stream.
    fn byte(i: u64) -> u8 {
        (i.wrapping_mul(7) % 251) as u8
    }

    /// Produces `len` bytes in uneven steps, failing at `fail_at` if given, and checks at each
    /// call that `out` ends with what it produced before (as the gzip pass relies on).
    struct Counting {
        len: u64,
        made: u64,
        step: usize,
        fail_at: Option<u64>,
        tail_checks: u32,
    }

    impl Counting {
        fn new(len: u64) -> Counting {
            Counting {
                len,
                made: 0,
                step: 1,
                fail_at: None,
                tail_checks: 0,
            }
        }
    }

    impl Produce for Counting {
        fn produce(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
            let behind = (self.made.min(TAIL as u64)) as usize;
            assert!(
                out.len() >= behind,
                "out lacks the last {behind} bytes produced"
            );
            for (k, b) in out[out.len() - behind..].iter().enumerate() {
                assert_eq!(
                    *b,
                    byte(self.made - behind as u64 + k as u64),
                    "tail byte {k}"
                );
            }
            self.tail_checks += 1;
            if self.fail_at.is_some_and(|at| self.made >= at) {
                return Err(io::Error::other("corrupt deflate data"));
            }
            // Steps of 1 byte up to a full piece, varied, so pieces are short and long.
            self.step = (self.step * 31 + 17) % max + 1;
            let n = (self.step as u64).min(self.len - self.made) as usize;
            out.extend((0..n as u64).map(|i| byte(self.made + i)));
            self.made += n as u64;
            Ok(n)
        }
    }

    /// Reads the whole stream through `ahead`, asking for uneven amounts.
    fn drain(ahead: &mut impl Produce) -> io::Result<Vec<u8>> {
        let mut got = Vec::new();
        let mut ask = 1;
        loop {
            ask = (ask * 13 + 5) % 70_000 + 1;
            if ahead.produce(&mut got, ask)? == 0 {
                return Ok(got);
            }
        }
    }

    #[test]
    fn the_stream_arrives_whole_and_in_order() {
        let len = 5 * PRODUCE as u64 + 12_345;
        std::thread::scope(|scope| {
            let mut ahead = Ahead::start(scope, Counting::new(len));
            let got = drain(&mut ahead).expect("no error");
            assert_eq!(got.len() as u64, len);
            assert!(got.iter().enumerate().all(|(i, b)| *b == byte(i as u64)));
            let producer = ahead.join().expect("the producer comes back");
            assert_eq!(producer.made, len);
            assert!(
                producer.tail_checks > 5,
                "the producer was called {} times",
                producer.tail_checks
            );
        });
    }

    #[test]
    fn a_producer_error_ends_the_stream_with_it() {
        std::thread::scope(|scope| {
            let mut producer = Counting::new(u64::MAX);
            producer.fail_at = Some(3 * PRODUCE as u64);
            let mut ahead = Ahead::start(scope, producer);
            let err = drain(&mut ahead).expect_err("the error reaches the reader");
            assert_eq!(err.to_string(), "corrupt deflate data");
            assert!(
                ahead.join().is_err(),
                "a stream that did not end gives no producer"
            );
        });
    }

    #[test]
    fn a_reader_that_stops_early_stops_the_producer() {
        // An endless stream: the scope only returns if dropping `Ahead` ends the thread.
        std::thread::scope(|scope| {
            let mut ahead = Ahead::start(scope, Counting::new(u64::MAX));
            let mut got = Vec::new();
            while got.len() < 2 * PRODUCE {
                ahead.produce(&mut got, PRODUCE).expect("no error");
            }
            drop(ahead);
        });
    }
}
