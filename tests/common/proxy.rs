//! A TCP proxy for fault and laziness tests in front of a server on 127.0.0.1: it forwards
//! both ways, counts the bytes the server sends, and can cut a connection once after it has
//! carried a given number of server bytes (a connection lost in the middle of a blob).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A running proxy; stops accepting when dropped (connections in flight run out).
pub struct Proxy {
    pub port: u16,
    addr: std::net::SocketAddr,
    state: Arc<ProxyState>,
}

struct ProxyState {
    /// Bytes sent from the server to clients, over all connections.
    served: AtomicU64,
    /// Cut the first connection whose server bytes pass this (0: never).
    cut_after: AtomicU64,
    /// How many connections were cut.
    cuts: AtomicU64,
    connections: AtomicU64,
    stop: AtomicBool,
}

impl Proxy {
    /// Starts a proxy on a free port of 127.0.0.1 in front of `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> Proxy {
        Proxy::start_on("127.0.0.1", upstream)
    }

    /// Starts a proxy on a free port of `ip` (another loopback address such as 127.0.0.2
    /// makes a registry that is not "localhost" to the client).
    pub fn start_on(ip: &str, upstream: u16) -> Proxy {
        let listener = TcpListener::bind((ip, 0)).expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let port = addr.port();
        let state = Arc::new(ProxyState {
            served: AtomicU64::new(0),
            cut_after: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::Relaxed);
                let st = st.clone();
                std::thread::spawn(move || pump(client, server, st));
            }
        });
        Proxy { port, addr, state }
    }

    /// Cuts one connection (the first) once it has carried `bytes` bytes from the server.
    pub fn cut_once_after(&self, bytes: u64) {
        self.state.cut_after.store(bytes, Ordering::SeqCst);
    }

    /// Bytes the server sent through the proxy so far.
    pub fn served(&self) -> u64 {
        self.state.served.load(Ordering::SeqCst)
    }

    pub fn reset_served(&self) {
        self.state.served.store(0, Ordering::SeqCst);
    }

    pub fn cuts(&self) -> u64 {
        self.state.cuts.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn pump(client: TcpStream, server: TcpStream, st: Arc<ProxyState>) {
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // Client to server: plain copy.
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    // Server to client: counted, and maybe cut.
    let (mut s_read, mut c_write) = (server, client);
    let mut carried = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match s_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let limit = st.cut_after.load(Ordering::SeqCst);
        let mut n_send = n;
        let mut cut = false;
        if limit > 0 && carried + n as u64 >= limit {
            // Only one connection gets cut: the one that claims the limit.
            if st
                .cut_after
                .compare_exchange(limit, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                n_send = (limit - carried) as usize;
                cut = true;
            }
        }
        if c_write.write_all(&buf[..n_send]).is_err() {
            break;
        }
        carried += n_send as u64;
        st.served.fetch_add(n_send as u64, Ordering::SeqCst);
        if cut {
            st.cuts.fetch_add(1, Ordering::SeqCst);
            break;
        }
    }
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = s_read.shutdown(Shutdown::Both);
    let _ = up.join();
}
