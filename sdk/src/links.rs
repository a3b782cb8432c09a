//! The app server's set of links, one per proxy node it reaches: which are
//! up (readiness of the `Server`), what each node said about itself, and
//! where each message goes (`route`). `discovery` opens and closes links as
//! the server endpoints resolve.

mod discovery;
mod route;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::RwLock;
use tokio::sync::watch;

use crate::dispatch::Dispatcher;
use crate::link::{LinkStatus, Peer};
pub use discovery::{DEFAULT_DISCOVERY_INTERVAL, Resolve};
pub(crate) use discovery::{Plan, Spawner, supervise};
pub(crate) use route::{combine_changes, combine_exists};

/// One link as [`Server::links`](crate::Server::links) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkInfo {
    /// The server endpoint as configured (it may name a host).
    pub endpoint: String,
    /// The URL dialled: the endpoint, or with DNS discovery the endpoint
    /// with its host replaced by one resolved address.
    pub address: String,
    /// The proxy node's id, from its `Welcome`; empty until the first one.
    /// Connection ids issued by the node start with it.
    pub node_id: String,
    /// The node's cluster; empty for a standalone node.
    pub cluster: String,
    /// The link is established (the node's `Welcome` was received).
    pub up: bool,
    /// Up, and the node reports it can reach its cluster; cluster-wide
    /// messages prefer ready links.
    pub ready: bool,
}

/// How many links are up, and whether they all stopped for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub up: usize,
    pub stopped: bool,
}

pub(crate) struct Links {
    peers: RwLock<Vec<Arc<Peer>>>,
    readiness: watch::Sender<Readiness>,
    /// Knows which link each connection arrived on.
    dispatcher: OnceLock<Weak<Dispatcher>>,
    /// Turns cluster-wide requests through the links of a cluster.
    turn: AtomicU64,
}

impl Links {
    pub(crate) fn new() -> Self {
        Self {
            peers: RwLock::new(Vec::new()),
            readiness: watch::channel(Readiness::default()).0,
            dispatcher: OnceLock::new(),
            turn: AtomicU64::new(0),
        }
    }

    /// The resolver used unless the builder names another.
    pub(crate) fn system_resolver() -> Arc<dyn Resolve> {
        Arc::new(discovery::SystemResolver)
    }

    pub(crate) fn set_dispatcher(&self, dispatcher: &Arc<Dispatcher>) {
        let _ = self.dispatcher.set(Arc::downgrade(dispatcher));
    }

    pub(crate) fn add(&self, peer: Arc<Peer>) {
        self.peers.write().push(peer);
        self.refresh();
    }

    pub(crate) fn remove(&self, peer: &Arc<Peer>) {
        self.peers.write().retain(|p| !Arc::ptr_eq(p, peer));
        self.refresh();
    }

    pub(crate) fn peers(&self) -> Vec<Arc<Peer>> {
        self.peers.read().clone()
    }

    /// Recounts the links that are up; call after any status change.
    pub(crate) fn refresh(&self) {
        let up = self
            .peers
            .read()
            .iter()
            .filter(|peer| peer.view().status == LinkStatus::Ready)
            .count();
        self.readiness.send_if_modified(|state| {
            let changed = state.up != up;
            state.up = up;
            changed
        });
    }

    /// Every link task ended.
    pub(crate) fn stopped(&self) {
        self.readiness.send_modify(|state| state.stopped = true);
    }

    pub(crate) fn readiness(&self) -> watch::Receiver<Readiness> {
        self.readiness.subscribe()
    }

    pub(crate) fn infos(&self) -> Vec<LinkInfo> {
        self.peers()
            .iter()
            .map(|peer| {
                let view = peer.view();
                let up = view.status == LinkStatus::Ready;
                LinkInfo {
                    endpoint: peer.target.endpoint.clone(),
                    address: peer.target.address.clone(),
                    node_id: view.node_id,
                    cluster: view.cluster,
                    up,
                    ready: up && view.node_ready,
                }
            })
            .collect()
    }

    /// The link a connection arrived on, while it is assigned here.
    pub(crate) fn home(&self, connection: &str) -> Option<Arc<Peer>> {
        self.dispatcher
            .get()
            .and_then(Weak::upgrade)
            .and_then(|dispatcher| dispatcher.home(connection))
    }
}
