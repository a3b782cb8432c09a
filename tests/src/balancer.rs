//! A TCP load balancer in front of several proxies, as a cloud load
//! balancer or a Kubernetes Service would be: each accepted connection goes
//! to a backend whose `GET /readyz` answered 200 at the last check (every
//! 100 ms): the next one round robin, or in failover mode the first ready
//! one in the order they were added (active/passive). A backend that
//! refuses the TCP connection is skipped. Clients that must land on the same node
//! for several requests (negotiate, then connect) need sticky sessions this
//! balancer does not have: they use WebSockets with `skipNegotiation`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::http;

/// How often each backend's readiness is checked.
const CHECK_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone)]
struct Backend {
    addr: SocketAddr,
    readyz: String,
}

#[derive(Default)]
struct State {
    failover: bool,
    backends: Vec<Backend>,
    /// Indexes into `backends` of the ready ones.
    ready: Vec<usize>,
}

/// A running balancer; stops on drop.
pub struct Balancer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Balancer {
    /// Listens on a free loopback port with no backends yet; round robin.
    pub async fn start() -> Self {
        Self::start_mode(false).await
    }

    /// Like [`Balancer::start`], sending every connection to the first ready
    /// backend in the order they were added.
    pub async fn start_failover() -> Self {
        Self::start_mode(true).await
    }

    async fn start_mode(failover: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the balancer");
        let addr = listener.local_addr().expect("bound socket has an address");
        let state = Arc::new(Mutex::new(State {
            failover,
            ..State::default()
        }));
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        let check = tokio::spawn(check_loop(state.clone()));
        Self {
            addr,
            state,
            tasks: vec![accept, check],
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a backend: client traffic goes to `client_url`'s host and port
    /// once `{admin_url}/readyz` answers 200.
    pub fn add(&self, client_url: &str, admin_url: &str) {
        let addr = client_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("backend URL is http://IP:PORT");
        self.state.lock().backends.push(Backend {
            addr,
            readyz: format!("{admin_url}/readyz"),
        });
    }

    /// Waits until `n` backends are ready (or panics after 10 s).
    pub async fn wait_ready(&self, n: usize) {
        for _ in 0..100 {
            if self.state.lock().ready.len() >= n {
                return;
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
        panic!("fewer than {n} balancer backends became ready within 10 s");
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn check_loop(state: Arc<Mutex<State>>) {
    let client = http::client();
    loop {
        let backends = state.lock().backends.clone();
        let mut ready = Vec::with_capacity(backends.len());
        for (i, backend) in backends.iter().enumerate() {
            let ok = client
                .get(&backend.readyz)
                .timeout(Duration::from_millis(500))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                ready.push(i);
            }
        }
        state.lock().ready = ready;
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<Mutex<State>>) {
    let next = Arc::new(AtomicUsize::new(0));
    while let Ok((inbound, _)) = listener.accept().await {
        let state = state.clone();
        let next = next.clone();
        tokio::spawn(async move {
            let (candidates, failover): (Vec<SocketAddr>, bool) = {
                let s = state.lock();
                let ready = s.ready.iter().map(|&i| s.backends[i].addr).collect();
                (ready, s.failover)
            };
            if candidates.is_empty() {
                return; // dropping the socket refuses the client
            }
            let start = if failover {
                0
            } else {
                next.fetch_add(1, Ordering::Relaxed)
            };
            for k in 0..candidates.len() {
                let addr = candidates[(start + k) % candidates.len()];
                if let Ok(outbound) = TcpStream::connect(addr).await {
                    relay(inbound, outbound).await;
                    return;
                }
            }
        });
    }
}

async fn relay(mut inbound: TcpStream, mut outbound: TcpStream) {
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}
