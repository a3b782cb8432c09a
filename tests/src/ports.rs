//! Free loopback ports for the processes a test starts.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::OnceLock;

use parking_lot::Mutex;

/// Every port handed out by this test binary, so that tests running in
/// parallel never get the same one (the kernel may offer a just-released
/// port again).
static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();

/// A port that was free on 127.0.0.1 a moment ago and was not handed out
/// before in this process: bound to port 0, read back, and released so the
/// process under test can bind it.
pub fn free_port() -> u16 {
    let handed_out = HANDED_OUT.get_or_init(Mutex::default);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("bind 127.0.0.1:0 to find a free port");
        if handed_out.lock().insert(port) {
            return port;
        }
    }
}
