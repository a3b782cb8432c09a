//! One link to one proxy node: keeps an `Upstream.Link` stream up,
//! reconnecting with backoff when it drops, and tracks what the node said
//! about itself (node id, cluster, readiness).

mod backoff;
mod outbox;
mod session;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::connection_string::ConnectionString;
use crate::dispatch::Dispatcher;
use crate::links::Links;
use backoff::Backoff;
pub(crate) use outbox::{AckReply, Outbox};
use session::Ended;

/// Where the link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkStatus {
    /// Dialling, waiting for `Welcome`, or waiting to retry.
    Connecting,
    /// `Welcome` received; sends go through.
    Ready,
    /// Shut down for good.
    Stopped,
}

/// Tunables of the link; see `ServerBuilder` for what each means.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub queue_capacity: usize,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    pub shutdown_grace: Duration,
    pub tls: TlsSettings,
}

/// How `https://` server endpoints are verified, and the app server's own
/// certificate for proxies that require one (mutual TLS).
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsSettings {
    /// PEM CA bundle trusted instead of the system's roots.
    pub ca: Option<Vec<u8>>,
    /// PEM certificate chain and key presented to the proxy.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// What a link dials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    /// The server endpoint as configured (may name a host).
    pub endpoint: String,
    /// The URL dialled: the endpoint itself, or with the host replaced by
    /// one address it resolved to.
    pub address: String,
}

impl Target {
    /// Dials the endpoint as configured.
    pub(crate) fn direct(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            address: endpoint.to_owned(),
        }
    }
}

/// What the proxy node told about itself, kept after the link drops so
/// routing knows which node and cluster an unreachable link leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct View {
    pub status: LinkStatus,
    pub node_id: String,
    pub cluster: String,
    /// The node's last `NodeStatus`; true until it says otherwise.
    pub node_ready: bool,
}

/// One link as the rest of the SDK sees it: its target, its way out and
/// the node's standing. Shared by the link task, routing and dispatch.
pub(crate) struct Peer {
    pub target: Target,
    pub outbox: Outbox,
    view: Mutex<View>,
}

impl Peer {
    pub(crate) fn new(target: Target, ack_timeout: Duration) -> Self {
        Self {
            target,
            outbox: Outbox::new(ack_timeout),
            view: Mutex::new(View {
                status: LinkStatus::Connecting,
                node_id: String::new(),
                cluster: String::new(),
                node_ready: true,
            }),
        }
    }

    pub(crate) fn view(&self) -> View {
        self.view.lock().clone()
    }

    pub(crate) fn set_status(&self, status: LinkStatus) {
        self.view.lock().status = status;
    }

    pub(crate) fn welcomed(&self, node_id: String, cluster: String) {
        let mut view = self.view.lock();
        view.status = LinkStatus::Ready;
        view.node_id = node_id;
        view.cluster = cluster;
        view.node_ready = true;
    }

    pub(crate) fn set_node_ready(&self, ready: bool) {
        self.view.lock().node_ready = ready;
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("target", &self.target)
            .field("view", &*self.view.lock())
            .finish_non_exhaustive()
    }
}

/// Everything the link task needs.
pub(crate) struct Link {
    pub conn: ConnectionString,
    pub server_id: String,
    pub settings: Settings,
    pub dispatcher: Arc<Dispatcher>,
    pub links: Arc<Links>,
    pub peer: Arc<Peer>,
}

impl Link {
    /// Keeps a session up until `shutdown` turns true or its sender is
    /// dropped.
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(self.settings.reconnect_min, self.settings.reconnect_max);
        let address = self.peer.target.address.as_str();
        loop {
            self.set_status(LinkStatus::Connecting);
            let ended = session::run(&self, &mut shutdown).await;
            self.set_status(LinkStatus::Connecting);
            self.peer.outbox.detach();
            self.dispatcher.link_lost(&self.peer);
            match ended {
                Ended::Shutdown => {
                    // Disconnect handlers of the connections just ended.
                    self.dispatcher
                        .wait_idle(self.settings.shutdown_grace)
                        .await;
                    break;
                }
                Ended::Lost(error) => {
                    tracing::warn!(%error, %address, "link to the proxy lost; reconnecting");
                    backoff.reset();
                }
                Ended::Failed(error) => {
                    tracing::warn!(%error, %address, "cannot link to the proxy");
                }
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(&mut shutdown) => break,
            }
        }
        self.set_status(LinkStatus::Stopped);
        tracing::info!(%address, "link to the proxy shut down");
    }

    fn set_status(&self, status: LinkStatus) {
        self.peer.set_status(status);
        self.links.refresh();
    }
}

/// Resolves once shutdown is requested (or nobody can request it anymore).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
