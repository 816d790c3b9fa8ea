//! Panic containment for request handlers. fuser does not catch panics, and one would end a
//! worker thread; each handler runs under [`guarded`] instead, so a bug answers one request
//! with `EIO` and the mount serves on.

use std::panic::{AssertUnwindSafe, catch_unwind};

use log::error;

/// Runs a handler; a panic is logged and, through the dropped reply, answered with EIO.
pub(super) fn guarded(op: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        error!("internal error while handling {op}; answered EIO");
    }
}

#[cfg(test)]
mod tests {
    use super::guarded;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// Stands for a fuser reply: dropped unsent, fuser answers the request with EIO
    /// (`ReplyRaw`'s `Drop`).
    struct Reply(Arc<AtomicBool>);

    impl Drop for Reply {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// A handler that panics must not take its worker thread down: `guarded` returns, the
    /// reply the handler owned is dropped on the way (so the kernel gets EIO), and the next
    /// request on the same thread is served. Only true while panics unwind: a release profile
    /// with `panic = "abort"` would turn each into the end of the mount.
    #[test]
    fn a_panicking_handler_answers_eio_and_the_thread_serves_on() {
        const {
            assert!(
                cfg!(panic = "unwind"),
                "handlers rely on unwinding panics (no panic = \"abort\" in Cargo.toml)"
            )
        };
        let dropped = Arc::new(AtomicBool::new(false));
        let reply = Reply(dropped.clone());
        guarded("lookup", move || {
            let _owned = reply;
            panic!("a bug in a handler");
        });
        assert!(
            dropped.load(Ordering::SeqCst),
            "the reply was not dropped during the unwind"
        );
        let served = AtomicUsize::new(0);
        for _ in 0..3 {
            guarded("getattr", || {
                served.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(served.load(Ordering::SeqCst), 3);
    }

    /// Panics on many worker threads at once (fuser's `n_threads`) are each contained.
    #[test]
    fn panics_on_several_threads_are_each_contained() {
        let answered = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let answered = answered.clone();
                std::thread::spawn(move || {
                    for n in 0..10 {
                        let reply = Reply(Arc::new(AtomicBool::new(false)));
                        guarded("read", || {
                            let _owned = reply;
                            if (i + n) % 2 == 0 {
                                panic!("bug {i}/{n}");
                            }
                        });
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a worker thread died of a handler's panic");
        }
        assert_eq!(answered.load(Ordering::SeqCst), 40);
    }
}
