//! The Redis bus: proxy replicas sharing one Redis (or one Redis Cluster)
//! act as one service.
//!
//! Pub/sub on the channels of [`channels`](super::channels) — classic
//! (`SUBSCRIBE`/`PUBLISH`) on a single Redis, sharded (`SSUBSCRIBE`/
//! `SPUBLISH`) on a cluster ([`conn`]) — subscribed by interest: a node listens to a
//! hub, group or user channel only while it holds a connection there, and
//! always to its own node channel. Every message is a
//! [`switchboard.bus.v1.Envelope`](pb_bus::Envelope) naming its origin; a node
//! delivers its own sends locally at once and ignores their echoes.
//!
//! Everything a node publishes goes through one queue and one task on one
//! Redis connection, pipelined in order ([`publisher`]), so messages from this
//! node to one channel arrive in the order they were published. Subscriptions
//! live on a second connection ([`link`]), which also notices when Redis goes
//! away. [`requests`] asks other nodes and answers them; [`user_groups`]
//! keeps user groups in Redis.

mod conn;
mod link;
mod publisher;
mod requests;
mod user_groups;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use switchboard_proto::{self as pb, bus::v1 as pb_bus};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::{Answer, Bus, Readiness, SendError, channels, deliver_local, ops, record};
use crate::config::Config;
use crate::ids::{self, NodeId};
use crate::metrics::Metrics;
use crate::router::{Delivery, Interest, Router};

/// Messages that may wait for the publisher; past this, sends to other
/// nodes are dropped (and counted) rather than held without bound.
const PUBLISH_QUEUE: usize = 65_536;
/// Most queued messages pipelined in one round trip to Redis.
const MAX_PIPELINE: usize = 512;

/// See the module docs.
pub struct RedisBus {
    inner: Arc<Inner>,
}

/// A command for Redis; `reply` gets its answer.
struct Outgoing {
    cmd: ::redis::Cmd,
    /// The channel or key the command is about: in a cluster, commands of
    /// one pipeline must share its slot.
    name: String,
    reply: Option<oneshot::Sender<Result<::redis::Value, String>>>,
}

struct Inner {
    node: NodeId,
    prefix: String,
    /// The Redis URL without its password, for logs and errors.
    url: String,
    target: conn::Target,
    router: Arc<Router>,
    metrics: Arc<Metrics>,
    timeout: Duration,
    out: mpsc::Sender<Outgoing>,
    /// Taken by [`Bus::run`].
    parts: Mutex<Option<(mpsc::Receiver<Outgoing>, mpsc::UnboundedReceiver<Interest>)>>,
    /// The connection for commands while Redis is reachable.
    conn: Mutex<Option<conn::Conn>>,
    connected: AtomicBool,
    /// Channels subscribed on the current connection; `subscriptions` is
    /// notified when it changes.
    subscribed: Mutex<HashSet<String>>,
    subscriptions: Notify,
    pending: Mutex<HashMap<u64, mpsc::UnboundedSender<pb_bus::Reply>>>,
    next_request: AtomicU64,
    readiness: watch::Sender<Readiness>,
    /// Messages not published since the connection was lost.
    lost: AtomicU64,
}

impl RedisBus {
    /// A bus for `config.bus` (a Redis or Redis Cluster URL, already
    /// validated). Nothing connects until [`Bus::run`]; `interest` is the
    /// router's interest feed.
    pub fn new(
        config: &Config,
        node: NodeId,
        router: Arc<Router>,
        interest: mpsc::UnboundedReceiver<Interest>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ::redis::RedisError> {
        let described = config.bus.describe();
        let (out, out_rx) = mpsc::channel(PUBLISH_QUEUE);
        Ok(Self {
            inner: Arc::new(Inner {
                node,
                prefix: config.cluster_name.clone(),
                target: conn::Target::new(&config.bus)?,
                readiness: watch::Sender::new(Readiness {
                    ready: false,
                    reason: format!("connecting to the cluster bus at {described}"),
                }),
                url: described,
                router,
                metrics,
                timeout: config.bus_timeout,
                out,
                parts: Mutex::new(Some((out_rx, interest))),
                conn: Mutex::new(None),
                connected: AtomicBool::new(false),
                subscribed: Mutex::new(HashSet::new()),
                subscriptions: Notify::new(),
                pending: Mutex::new(HashMap::new()),
                next_request: AtomicU64::new(1),
                lost: AtomicU64::new(0),
            }),
        })
    }
}

impl Bus for RedisBus {
    fn publish(&self, send: &pb::Send) -> Result<Delivery, SendError> {
        use pb::audience::Target;
        let started = Instant::now();
        let delivery = deliver_local(&self.inner.router, send)?;
        record(&self.inner.metrics, started, delivery);
        let inner = &self.inner;
        let (p, hub) = (&inner.prefix, send.hub.to_ascii_lowercase());
        let target = send.audience.as_ref().and_then(|a| a.target.as_ref());
        let forward = |channel: String, send: pb::Send| {
            inner.publish(channel, pb_bus::envelope::Kind::Send(send));
        };
        match target.ok_or(SendError::NoAudience)? {
            Target::All(_) | Target::Groups(_) | Target::Users(_) => {
                forward(channels::hub(p, &hub), send.clone())
            }
            Target::Group(g) => forward(channels::group(p, &hub, g), send.clone()),
            Target::User(u) => forward(channels::user(p, &hub, u), send.clone()),
            Target::Connection(id) => {
                if let Some(node) = inner.remote(id) {
                    forward(channels::node(p, node), send.clone());
                }
            }
            Target::Connections(list) => {
                // One message per node holding some of them, naming only its own.
                let mut by_node: Vec<(&str, Vec<String>)> = Vec::new();
                for id in &list.ids {
                    let Some(node) = inner.remote(id) else {
                        continue;
                    };
                    match by_node.iter_mut().find(|(n, _)| *n == node) {
                        Some((_, ids)) => ids.push(id.clone()),
                        None => by_node.push((node, vec![id.clone()])),
                    }
                }
                for (node, ids) in by_node {
                    let mut part = send.clone();
                    part.audience = Some(pb::Audience {
                        target: Some(Target::Connections(pb::IdList { ids })),
                    });
                    forward(channels::node(p, node), part);
                }
            }
        }
        Ok(delivery)
    }

    fn group_change(&self, change: pb::GroupChange) -> Answer {
        let inner = self.inner.clone();
        Box::pin(async move {
            let checked = ops::check_group_change(&change)?;
            match checked.member {
                ops::Member::Connection(id) => match inner.remote(id) {
                    None => {
                        ops::group_change_connection(&inner.router, &change, id)?;
                        if checked.add {
                            // Acked once sends to the group reach this node.
                            let group = Interest::Group(
                                checked.hub.as_str().into(),
                                change.group.as_str().into(),
                            );
                            inner.subscribed_to(&group).await;
                        }
                        Ok(())
                    }
                    Some(node) => {
                        let (node, id) = (node.to_owned(), id.to_owned());
                        let kind = pb_bus::request::Kind::GroupChange(change.clone());
                        inner.directed(&node, &id, kind).await
                    }
                },
                ops::Member::User(user) => {
                    let (hub, user, add) = (checked.hub.clone(), user.to_owned(), checked.add);
                    inner.user_group(&hub, &user, add, change).await
                }
            }
        })
    }

    fn close(&self, close: pb::CloseConnection) -> Answer {
        let inner = self.inner.clone();
        Box::pin(async move {
            match inner.remote(&close.connection) {
                None => ops::close(&inner.router, &close),
                Some(node) => {
                    let (node, id) = (node.to_owned(), close.connection.clone());
                    inner
                        .directed(&node, &id, pb_bus::request::Kind::Close(close))
                        .await
                }
            }
        })
    }

    fn query(&self, query: pb::Query) -> Answer {
        use pb::query::Subject;
        let inner = self.inner.clone();
        Box::pin(async move {
            let local = ops::query(&inner.router, &query);
            let hub = query.hub.to_ascii_lowercase();
            let channel = match &query.subject {
                Some(Subject::Connection(id)) => match inner.remote(id) {
                    None => return local,
                    Some(node) => {
                        let (node, id) = (node.to_owned(), id.clone());
                        let kind = pb_bus::request::Kind::Query(query);
                        return inner.directed(&node, &id, kind).await;
                    }
                },
                _ if local.is_ok() => return local,
                Some(Subject::Group(g)) => channels::group(&inner.prefix, &hub, g),
                Some(Subject::User(u)) => channels::user(&inner.prefix, &hub, u),
                None => return local,
            };
            // Only nodes holding the group or user listen on its channel: ask them.
            let (receivers, waiting) = inner
                .ask(channel, pb_bus::request::Kind::Query(query))
                .await?;
            inner.any_yes(receivers, waiting, local).await
        })
    }

    fn cluster(&self) -> &str {
        &self.inner.prefix
    }

    fn readiness(&self) -> watch::Receiver<Readiness> {
        self.inner.readiness.subscribe()
    }

    fn run(
        self: Arc<Self>,
        stopped: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let parts = inner.parts.lock().take();
            let Some((out, interest)) = parts else {
                return;
            };
            tokio::join!(
                publisher::publisher(inner.clone(), out, stopped.clone()),
                link::supervise(inner.clone(), interest, stopped),
            );
        })
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Inner {
    /// The node holding connection `id`, when that is another node.
    fn remote<'a>(&self, id: &'a str) -> Option<&'a str> {
        let node = ids::node_of(id);
        (!node.is_empty() && node != self.node.as_str()).then_some(node)
    }
}

/// Resolves once `stopped` turns true (holding no borrow of it afterwards).
async fn stopping(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// `5 s`, `1500 ms`.
fn humane(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}
