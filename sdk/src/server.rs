//! The running app server: configuration, start, readiness, hub handles and
//! shutdown.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::Response;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::connection_string::{ConnectionString, ServerDiscovery};
use crate::context::HubContext;
use crate::dispatch::Dispatcher;
use crate::error::{Repr, Result};
use crate::hub::Hub;
use crate::link::Settings;
use crate::links::{
    DEFAULT_DISCOVERY_INTERVAL, LinkInfo, Links, Plan, Readiness, Resolve, Spawner, supervise,
};
use crate::negotiate::{NegotiateOptions, NegotiateRequest, Negotiator};

/// Default shortest delay before reconnecting.
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(200);
/// Default longest delay before reconnecting.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(10);
/// Default number of outbound messages that may wait for the link.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Default time to wait for the proxy to acknowledge a request.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time to wait for the TCP connection to the proxy.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time to wait for `Welcome` after dialling.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time running handlers get to finish at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Configures and starts a [`Server`].
pub struct ServerBuilder {
    conn: ConnectionString,
    server_id: Option<String>,
    hubs: Vec<Hub>,
    settings: Settings,
    ack_timeout: Duration,
    /// Set by [`ServerBuilder::dns_discovery`]; else from the connection string.
    discovery_interval: Option<Duration>,
    resolver: Option<Arc<dyn Resolve>>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("conn", &self.conn)
            .field("server_id", &self.server_id)
            .field("hubs", &self.hubs)
            .field("settings", &self.settings)
            .field("ack_timeout", &self.ack_timeout)
            .field("discovery_interval", &self.discovery_interval)
            .field("custom_resolver", &self.resolver.is_some())
            .finish()
    }
}

impl ServerBuilder {
    /// Also links to the proxy replica at `url` (`http(s)://host[:port]`),
    /// besides the connection string's `ServerEndpoint` list. When the
    /// connection string named none, the first endpoint added replaces the
    /// default derived from its `Endpoint`. Fails on a malformed or repeated
    /// URL.
    pub fn server_endpoint(mut self, url: &str) -> Result<Self> {
        self.conn = self.conn.with_server_endpoint(url)?;
        Ok(self)
    }

    /// Finds replicas through DNS: every `interval` (default 30 s, see
    /// [`DEFAULT_DISCOVERY_INTERVAL`]) each server endpoint's host name is
    /// resolved again and one link is kept per address (same scheme and
    /// port; the host name stays the request's authority). Links to new
    /// addresses open, links to vanished ones close gracefully; a failed
    /// look-up keeps the links there are. Endpoints given as IP addresses
    /// are dialled as they are. Same as `ServerDiscovery=Dns` in the
    /// connection string, with an interval of your choice.
    pub fn dns_discovery(mut self, interval: Duration) -> Self {
        self.discovery_interval = Some(interval.max(Duration::from_millis(1)));
        self
    }

    /// Resolves host names for DNS discovery with `resolver` instead of the
    /// system resolver.
    pub fn resolver(mut self, resolver: impl Resolve) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// The name this app server gives the proxy (logs, metrics). Default:
    /// the `HOSTNAME` environment variable, else a random `app-…` name.
    pub fn server_id(mut self, server_id: impl Into<String>) -> Self {
        self.server_id = Some(server_id.into());
        self
    }

    /// Serves a hub.
    ///
    /// # Panics
    /// When a hub of the same name (ignoring case) was already added.
    pub fn hub(mut self, hub: Hub) -> Self {
        let name = hub.name().to_lowercase();
        assert!(
            self.hubs.iter().all(|h| h.name().to_lowercase() != name),
            "hub '{}' added twice (names are case-insensitive)",
            hub.name()
        );
        self.hubs.push(hub);
        self
    }

    /// Reconnect delays: the first retry waits up to `min`, each further one
    /// up to twice as long, capped at `max`, with random jitter. Defaults:
    /// 200 ms and 10 s.
    pub fn reconnect_delay(mut self, min: Duration, max: Duration) -> Self {
        self.settings.reconnect_min = min;
        self.settings.reconnect_max = max;
        self
    }

    /// How many outbound messages may wait for the link before senders
    /// wait (default 1024). Bounds memory when the proxy is slow.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.settings.queue_capacity = capacity.max(1);
        self
    }

    /// How long group changes, closes and queries wait for the proxy's
    /// acknowledgement (default 30 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// How long dialling the proxy may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// How long to wait for the proxy's `Welcome` (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.settings.handshake_timeout = timeout;
        self
    }

    /// How long [`Server::shutdown`] lets running handlers finish (and
    /// deliver their results) before closing the link (default 5 s).
    /// Streams still running then end with the link.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.settings.shutdown_grace = grace;
        self
    }

    /// Trusts the CA certificates in `pem` (instead of the system's roots)
    /// when verifying `https://` server endpoints, e.g. a private CA that
    /// signed the proxies' upstream certificates.
    pub fn tls_ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.settings.tls.ca = Some(pem.into());
        self
    }

    /// Presents this certificate chain and key (PEM) to proxies whose
    /// upstream port requires client certificates (mutual TLS).
    pub fn tls_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.settings.tls.identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Starts linking to the proxies in the background and returns the
    /// handle. Use [`Server::wait_ready`] to wait for the first link.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start(self) -> Server {
        let server_id = self.server_id.unwrap_or_else(default_server_id);
        let links = Arc::new(Links::new());
        let dispatcher = Arc::new(Dispatcher::new(self.hubs, links.clone()));
        links.set_dispatcher(&dispatcher);
        let dns = self
            .discovery_interval
            .or((self.conn.server_discovery() == ServerDiscovery::Dns)
                .then_some(DEFAULT_DISCOVERY_INTERVAL));
        let plan = Plan {
            endpoints: self.conn.server_endpoints().to_vec(),
            dns,
            resolver: self.resolver.unwrap_or_else(Links::system_resolver),
        };
        let spawner = Spawner {
            conn: self.conn.clone(),
            server_id: server_id.clone(),
            settings: self.settings,
            ack_timeout: self.ack_timeout,
            dispatcher: dispatcher.clone(),
            links: links.clone(),
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(supervise(plan, spawner, shutdown_rx));
        Server {
            inner: Arc::new(ServerInner {
                server_id,
                dispatcher,
                negotiator: Negotiator::new(self.conn),
                readiness: links.readiness(),
                links,
                shutdown: shutdown_tx,
                task: Mutex::new(Some(task)),
            }),
        }
    }
}

/// A running app server: its links to the proxy nodes and the hubs it
/// serves.
///
/// It keeps one link per proxy endpoint (or, with DNS discovery, per
/// resolved address). Each link reconnects on its own; the server is ready
/// while at least one is up. Client invocations arrive on the link of the
/// node holding the client and are answered through it.
///
/// Cheap to clone. The links run until [`Server::shutdown`] is called or the
/// last handle is dropped.
#[derive(Clone)]
pub struct Server {
    inner: Arc<ServerInner>,
}

struct ServerInner {
    server_id: String,
    dispatcher: Arc<Dispatcher>,
    negotiator: Negotiator,
    links: Arc<Links>,
    readiness: watch::Receiver<Readiness>,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Server {
    /// Starts configuring an app server for the proxy in `conn`.
    pub fn builder(conn: ConnectionString) -> ServerBuilder {
        ServerBuilder {
            conn,
            server_id: None,
            hubs: Vec::new(),
            settings: Settings {
                reconnect_min: DEFAULT_RECONNECT_MIN,
                reconnect_max: DEFAULT_RECONNECT_MAX,
                queue_capacity: DEFAULT_QUEUE_CAPACITY,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
                shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
                tls: Default::default(),
            },
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            discovery_interval: None,
            resolver: None,
        }
    }

    /// The name given to the proxy.
    pub fn server_id(&self) -> &str {
        &self.inner.server_id
    }

    /// Whether at least one link is up (its proxy's `Welcome` was
    /// received).
    pub fn is_ready(&self) -> bool {
        self.inner.readiness.borrow().up > 0
    }

    /// Waits until at least one link is up. Fails with
    /// [`ErrorKind::Shutdown`](crate::ErrorKind::Shutdown) if the server
    /// shuts down first. Wrap it in a timeout to bound the wait.
    pub async fn wait_ready(&self) -> Result<()> {
        let mut readiness = self.inner.readiness.clone();
        match readiness
            .wait_for(|state| state.up > 0 || state.stopped)
            .await
            .map(|state| *state)
        {
            Ok(state) if state.up > 0 => Ok(()),
            _ => Err(Repr::Shutdown.into()),
        }
    }

    /// Every link and where it stands: endpoint, address dialled, the
    /// node's id and cluster, and whether it is up and ready.
    pub fn links(&self) -> Vec<LinkInfo> {
        self.inner.links.infos()
    }

    /// A handle on a served hub (name matched case-insensitively).
    pub fn hub(&self, name: &str) -> Option<HubContext> {
        self.inner.dispatcher.hub_context(name)
    }

    /// The names of the served hubs.
    pub fn hub_names(&self) -> Vec<String> {
        self.inner.dispatcher.hub_names()
    }

    /// Number of client connections currently assigned to this app server.
    pub fn connection_count(&self) -> usize {
        self.inner.dispatcher.connection_count()
    }

    /// Mints client tokens and negotiate answers for this proxy.
    pub fn negotiator(&self) -> &Negotiator {
        &self.inner.negotiator
    }

    /// `POST /{hub}/negotiate` for every served hub; see
    /// [`Negotiator::routes`].
    pub fn negotiate_routes<S, F, Fut>(&self, hook: F) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
        F: Fn(NegotiateRequest) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<NegotiateOptions, Response>> + Send + 'static,
    {
        let hubs: HashSet<String> = self.hub_names().into_iter().collect();
        self.inner.negotiator.routes(hubs, hook)
    }

    /// Shuts down: keeps serving until running handlers finished (at most
    /// the shutdown grace) so their results are delivered, closes every
    /// link, runs the disconnect handler of every connection (reason `link lost`; the proxy moves
    /// them to other app servers) and waits for all of it.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let task = self.inner.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("server_id", &self.inner.server_id)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

fn default_server_id() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("app-{:08x}", rand::random::<u32>()))
}
