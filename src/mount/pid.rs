//! Pid files that name a process unambiguously: `PID START`, where START is the process's
//! start time (clock ticks after boot, field 22 of `/proc/PID/stat`).
//!
//! A bare pid is not enough to tell that a daemon still runs: pids are recycled (with
//! `pid_max` at 32768 a busy machine wraps around in minutes), and thread ids share the same
//! number space, so `/proc/PID` can exist for a thread of some other process. A pid and its
//! start time together name one process for the life of the boot.

/// The pid file line for process `pid` (this process, normally).
pub fn record(pid: u32) -> String {
    match stat(pid) {
        Some((_, start)) => format!("{pid} {start}\n"),
        None => format!("{pid}\n"),
    }
}

/// The pid and start time a pid file holds; the start time is `None` in files written by
/// older versions (a pid alone).
pub fn parse(text: &str) -> Option<(u32, Option<u64>)> {
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse().ok()?;
    let start = match words.next() {
        Some(w) => Some(w.parse().ok()?),
        None => None,
    };
    Some((pid, start))
}

/// Whether the process a pid file names still runs (a zombie does not count). Without a
/// start time, it has to be a unionmount process (or this program) by its command line.
pub fn alive(pid: u32, start: Option<u64>) -> bool {
    match (stat(pid), start) {
        (None, _) => false,
        (Some((state, _)), _) if state == 'Z' || state == 'X' => false,
        (Some((_, now)), Some(start)) => now == start,
        (Some(_), None) => named_unionmount(pid),
    }
}

/// The state letter and start time of `/proc/PID/stat`, for a process (not a thread of one:
/// those have their own start times, and their ids are never written to a pid file).
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces or parentheses itself: the
    // fields proper start after the last ')'. They are numbered from 1 (pid), so the state
    // (field 3) comes first and the start time (field 22) 19 places later.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The check for pid files without a start time: a live unionmount process by argv[0], or
/// this very program (test binaries run the library in-process).
fn named_unionmount(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let base = argv0.rsplit(|&b| b == b'/').next().unwrap_or_default();
    base.starts_with(b"unionmount")
        || std::fs::read_link(format!("/proc/{pid}/exe"))
            .is_ok_and(|exe| exe == std::env::current_exe().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_by_its_record() {
        let me = std::process::id();
        let (pid, start) = parse(&record(me)).expect("parses");
        assert_eq!(pid, me);
        assert!(start.is_some());
        assert!(alive(pid, start));
        // The same pid with another start time is another (earlier) process.
        assert!(!alive(pid, start.map(|s| s + 1)));
    }

    #[test]
    fn a_thread_id_is_not_taken_for_a_process() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as u32;
            tx.send(tid).expect("send");
            let _ = stop_rx.recv();
        });
        let tid = rx.recv().expect("tid");
        let (_, start) = parse(&record(std::process::id())).expect("parses");
        // /proc/TID exists, but the thread started after the process did.
        assert!(std::path::Path::new(&format!("/proc/{tid}")).exists());
        assert!(!alive(tid, start) || stat(tid).map(|s| s.1) == start);
        stop_tx.send(()).expect("stop");
        thread.join().expect("join");
    }

    #[test]
    fn old_and_bad_records() {
        assert_eq!(parse("123\n"), Some((123, None)));
        assert_eq!(parse("123 456\n"), Some((123, Some(456))));
        assert_eq!(parse(""), None);
        assert_eq!(parse("x 1"), None);
        assert_eq!(parse("1 y"), None);
        assert!(!alive(u32::MAX - 1, None));
    }
}
