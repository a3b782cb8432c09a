//! The seam between app-server requests and the nodes that hold their targets.
//!
//! A send enters the bus in its neutral form (hub, audience, exclusions,
//! target, encoded arguments) exactly as an app server expressed it. On one
//! node, [`LocalBus`] delivers it straight to the local [`Router`]. A
//! clustered bus ([`redis::RedisBus`]) also carries the same message to the
//! other nodes, each of which encodes it once per local wire protocol. Group
//! changes, closes and queries go through the bus too, because the
//! connection they name may be held by another node.

pub mod channels;
pub mod ops;
pub mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use switchboard_proto as pb;
use tokio::sync::watch;

use crate::connection::handle::Protocol;
use crate::metrics::Metrics;
use crate::router::frames::{self, FrameError};
use crate::router::{Audience, Delivery, Encoded, Router};

pub use ops::Outcome;

/// Why a send could not be delivered at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("send has no audience")]
    NoAudience,
    #[error("send has no arguments payload")]
    NoArguments,
    #[error(transparent)]
    Arguments(#[from] FrameError),
}

/// The answer to a group change, close or query, once every node involved
/// gave it.
pub type Answer = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Whether this node can reach the rest of its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// Why not, when not ready.
    pub reason: String,
}

impl Readiness {
    pub fn ready() -> Self {
        Self {
            ready: true,
            reason: String::new(),
        }
    }
}

/// Delivers app-server requests wherever their targets are connected.
pub trait Bus: Send + Sync + 'static {
    /// Delivers `send` to this node's targets at once and hands it to the
    /// other nodes holding targets.
    fn publish(&self, send: &pb::Send) -> Result<Delivery, SendError>;
    /// Applies a group change on the node holding the connection, or for a
    /// user on every node (and for the user's future connections).
    fn group_change(&self, change: pb::GroupChange) -> Answer;
    /// Closes a connection on the node holding it.
    fn close(&self, close: pb::CloseConnection) -> Answer;
    /// Whether a connection, group or user exists anywhere in the cluster.
    fn query(&self, query: pb::Query) -> Answer;
    /// The cluster name app servers are told; empty for a standalone node.
    fn cluster(&self) -> &str;
    /// Follows this node's standing in its cluster.
    fn readiness(&self) -> watch::Receiver<Readiness>;
    /// The bus's own work (connections to the broker), until `stopped`.
    fn run(
        self: Arc<Self>,
        stopped: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The single-node bus: everything is local.
pub struct LocalBus {
    router: Arc<Router>,
    metrics: Arc<Metrics>,
    readiness: watch::Sender<Readiness>,
}

impl LocalBus {
    pub fn new(router: Arc<Router>, metrics: Arc<Metrics>) -> Self {
        Self {
            router,
            metrics,
            readiness: watch::Sender::new(Readiness::ready()),
        }
    }
}

fn answered(outcome: Outcome) -> Answer {
    Box::pin(std::future::ready(outcome))
}

impl Bus for LocalBus {
    fn publish(&self, send: &pb::Send) -> Result<Delivery, SendError> {
        let started = Instant::now();
        let delivery = deliver_local(&self.router, send)?;
        record(&self.metrics, started, delivery);
        Ok(delivery)
    }

    fn group_change(&self, change: pb::GroupChange) -> Answer {
        answered(
            ops::check_group_change(&change).and_then(|checked| match checked.member {
                ops::Member::Connection(id) => {
                    ops::group_change_connection(&self.router, &change, id)
                }
                ops::Member::User(user) => {
                    self.router.user_group(
                        &checked.hub,
                        user,
                        &change.group,
                        checked.add,
                        ops::ttl_deadline(change.ttl_seconds),
                    );
                    Ok(())
                }
            }),
        )
    }

    fn close(&self, close: pb::CloseConnection) -> Answer {
        answered(ops::close(&self.router, &close))
    }

    fn query(&self, query: pb::Query) -> Answer {
        answered(ops::query(&self.router, &query))
    }

    fn cluster(&self) -> &str {
        ""
    }

    fn readiness(&self) -> watch::Receiver<Readiness> {
        self.readiness.subscribe()
    }

    fn run(self: Arc<Self>, _: watch::Receiver<bool>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(std::future::ready(()))
    }
}

/// Counts one local fan-out in the metrics.
pub fn record(m: &Metrics, started: Instant, delivery: Delivery) {
    m.fanout_seconds.observe(started.elapsed().as_secs_f64());
    m.fanout_deliveries.inc_by(delivery.delivered as u64);
    m.outbox_overflows.inc_by(delivery.overflowed as u64);
    m.unencodable.inc_by(delivery.unencodable as u64);
}

/// Encodes `send` once per protocol present among the local targets and
/// queues it for each of them.
pub fn deliver_local(router: &Router, send: &pb::Send) -> Result<Delivery, SendError> {
    use pb::audience::Target;
    let target = send
        .audience
        .as_ref()
        .and_then(|a| a.target.as_ref())
        .ok_or(SendError::NoAudience)?;
    let args = send.arguments.as_ref().ok_or(SendError::NoArguments)?;
    frames::check_arguments(args)?;
    let audience = match target {
        Target::All(_) => Audience::All,
        Target::Connection(id) => Audience::Connection(id),
        Target::Connections(l) => Audience::Connections(&l.ids),
        Target::Group(g) => Audience::Group(g),
        Target::Groups(l) => Audience::Groups(&l.ids),
        Target::User(u) => Audience::User(u),
        Target::Users(l) => Audience::Users(&l.ids),
    };
    let encode = |p: Protocol| match frames::invocation(p, None, &send.target, args) {
        Ok(frame) => Some(frame),
        Err(e) => {
            tracing::warn!(hub = %send.hub, target = %send.target, protocol = p.name(), error = %e, "send cannot reach clients of this protocol");
            None
        }
    };
    let hub = send.hub.to_ascii_lowercase();
    Ok(router.send(&hub, audience, &send.excluded, &mut Encoded::new(&encode)))
}
