//! Switchboard: an edge connection proxy for SignalR clients.
//!
//! The data path, one module per stage:
//! [`transport`] (negotiate, WebSockets) → [`connection`] (handshake,
//! keep-alive, timeouts, outbox) → [`protocol`] (hub protocol codecs) →
//! [`router`] (connections, groups, users, fan-out) → [`upstream`] (gRPC links
//! to app servers). [`bus`] is the seam where sends leave one node.
//!
//! [`start`] runs a proxy in-process (tests bind port 0); the `switchboard`
//! binary is a thin wrapper around it.

#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod bus;
pub mod config;
pub mod connection;
pub mod ids;
pub mod metrics;
pub mod protocol;
pub mod router;
pub mod tls;
pub mod transport;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::auth::AccessKeys;
use crate::bus::redis::RedisBus;
use crate::bus::{Bus, LocalBus};
use crate::config::{BusKind, Config};
use crate::connection::close::{Close, CloseReason};
use crate::metrics::Metrics;
use crate::router::Router;
use crate::transport::negotiate::Negotiated;
use crate::upstream::registry::Links;

/// State shared by every part of a running proxy.
pub struct Shared {
    pub config: Config,
    pub keys: AccessKeys,
    pub router: Arc<Router>,
    pub links: Links,
    pub bus: Arc<dyn Bus>,
    pub negotiated: Negotiated,
    pub metrics: Arc<Metrics>,
    /// Random id of this node, reported to app servers.
    pub node_id: ids::NodeId,
    draining: AtomicBool,
}

impl Shared {
    pub fn new(config: Config) -> Result<Arc<Self>, StartError> {
        let metrics = Arc::new(Metrics::default());
        let node_id = ids::NodeId::random();
        let (router, bus): (Arc<Router>, Arc<dyn Bus>) = match &config.bus {
            BusKind::Local => {
                let router = Arc::new(Router::new());
                let bus = Arc::new(LocalBus::new(router.clone(), metrics.clone()));
                (router, bus)
            }
            BusKind::Redis(_) | BusKind::RedisCluster(_) => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let router = Arc::new(Router::with_interest(tx));
                let bus = RedisBus::new(
                    &config,
                    node_id.clone(),
                    router.clone(),
                    rx,
                    metrics.clone(),
                )
                .map_err(|e| StartError::Bus(e.to_string()))?;
                (router, Arc::new(bus))
            }
        };
        Ok(Arc::new(Self {
            keys: AccessKeys::new(&config.access_keys),
            bus,
            metrics,
            router,
            links: Links::default(),
            negotiated: Negotiated::default(),
            node_id,
            draining: AtomicBool::new(false),
            config,
        }))
    }

    /// True once shutdown began: readiness is false and negotiates are refused.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// A proxy running in this process.
pub struct Running {
    pub client_addr: SocketAddr,
    pub upstream_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Errors starting a proxy.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up the cluster bus: {0}")]
    Bus(String),
    #[error("cannot serve TLS on the {port} port: {source}")]
    Tls {
        port: &'static str,
        // Boxed: rustls errors are large and start errors travel by value.
        source: Box<tls::TlsError>,
    },
}

/// Loads a port's TLS files, when it has some.
fn load_tls(
    files: Option<tls::TlsFiles>,
    port: tls::Port,
) -> Result<Option<Arc<tls::Reloading>>, StartError> {
    files
        .map(|files| {
            tls::Reloading::load(files, &[port.alpn()]).map_err(|source| StartError::Tls {
                port: port.name(),
                source: Box::new(source),
            })
        })
        .transpose()
}

/// Set on every socket the client and upstream ports accept (plain or TLS):
/// messages are small and written as soon as they are ready, and Nagle's
/// algorithm would hold one back for the peer's delayed ACK (up to 40 ms)
/// whenever an earlier write is unacknowledged.
pub(crate) fn no_delay(tcp: &tokio::net::TcpStream) {
    let _ = tcp.set_nodelay(true);
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Loads the TLS files, binds the three ports and starts serving.
pub async fn start(mut config: Config) -> Result<Running, StartError> {
    // Before binding, so a bad certificate fails start without ever
    // accepting a connection.
    let client_tls = load_tls(config.client_tls(), tls::Port::Client)?;
    let upstream_tls = load_tls(config.upstream_tls(), tls::Port::Upstream)?;
    let client = bind("client port", config.listen).await?;
    let upstream = bind("upstream port", config.upstream_listen).await?;
    let admin = bind("admin port", config.admin_listen).await?;
    let client_addr = client.local_addr().expect("bound socket has an address");
    let upstream_addr = upstream.local_addr().expect("bound socket has an address");
    let admin_addr = admin.local_addr().expect("bound socket has an address");
    let scheme = if client_tls.is_some() {
        "https"
    } else {
        "http"
    };
    if config.public_url.is_empty() || config.public_url.ends_with(":0") {
        config.public_url = format!("{scheme}://{client_addr}");
    }
    if client_tls.is_some() && config.public_url.starts_with("http://") {
        tracing::warn!(public_url = %config.public_url, "the client port serves TLS but --public-url starts with http://: tokens and redirects name that URL");
    }
    tracing::info!(
        %client_addr,
        %upstream_addr,
        %admin_addr,
        public_url = %config.public_url,
        client_tls = client_tls.is_some(),
        upstream_tls = upstream_tls.is_some(),
        upstream_mtls = config.upstream_client_ca.is_some(),
        "switchboard listening"
    );

    let shared = Shared::new(config)?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tasks.spawn(shared.bus.clone().run(stopped.clone()));
    tasks.spawn(expire_user_groups(shared.clone(), stopped.clone()));
    for (tls, port) in [
        (&client_tls, tls::Port::Client),
        (&upstream_tls, tls::Port::Upstream),
    ] {
        if let Some(tls) = tls {
            let watch = tls.clone().watch(
                shared.config.tls_reload_interval,
                port,
                shared.metrics.clone(),
            );
            let mut stopped = stopped.clone();
            tasks.spawn(async move {
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => {}
                    () = watch => {}
                }
            });
        }
    }
    tasks.spawn(transport::serve(
        client,
        client_tls,
        shared.clone(),
        stopped.clone(),
    ));
    tasks.spawn(upstream::serve(
        upstream,
        upstream_tls,
        shared.clone(),
        stopped.clone(),
    ));
    tasks.spawn(admin::serve(admin, shared.clone(), stopped.clone()));
    tasks.spawn(transport::negotiate::sweep(shared.clone(), stopped));
    Ok(Running {
        client_addr,
        upstream_addr,
        admin_addr,
        shared,
        stop,
        tasks,
    })
}

/// Ends user-group memberships whose TTL ran out, once a second.
async fn expire_user_groups(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let ended = shared.router.expire_user_groups(std::time::Instant::now());
        if ended > 0 {
            tracing::debug!(ended, "user group memberships expired");
        }
    }
}

/// Share of the drain window over which clients are closed.
const DRAIN_CLOSING_SHARE: f64 = 0.8;

impl Running {
    /// Graceful stop: readiness goes false, new negotiates are refused, every
    /// client gets `Close{allowReconnect: true}`, spread over the first 80 %
    /// of the drain window so they do not reconnect elsewhere all at once
    /// and have reconnected by the window's end, then app-server
    /// links and listeners close. Takes at most the shutdown timeout for clients.
    pub async fn shutdown(mut self) {
        self.shared.draining.store(true, Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        let config = &self.shared.config;
        let clients = self.shared.router.all_connections();
        // Up to 100 steps, each closing an equal share, over the first
        // part of the window: the rest leaves the last clients time to
        // reconnect elsewhere before the window ends.
        let closing = config.drain_window.mul_f64(DRAIN_CLOSING_SHARE);
        let steps = clients.len().clamp(1, 100);
        let per_step = clients.len().div_ceil(steps).max(1);
        for (i, batch) in clients.chunks(per_step).enumerate() {
            tokio::time::sleep_until(started + closing.mul_f64(i as f64 / steps as f64)).await;
            for handle in batch {
                handle
                    .outbox
                    .close(Close::new(CloseReason::Shutdown, None, true));
            }
        }
        let deadline = started + config.shutdown_timeout;
        while self.shared.router.connection_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        upstream::close_all(&self.shared);
        let _ = self.stop.send(true);
        let grace = tokio::time::timeout(Duration::from_secs(2), async {
            while self.tasks.join_next().await.is_some() {}
        });
        if grace.await.is_err() {
            self.tasks.abort_all();
        }
    }
}
