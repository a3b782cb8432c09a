//! The two kinds of Redis deployment behind one interface: a single Redis
//! (classic `PUBLISH`/`SUBSCRIBE`) or a Redis Cluster (sharded pub/sub:
//! `SPUBLISH`/`SSUBSCRIBE`, each channel served by the shard owning its
//! slot, so a message travels only to that shard instead of every node of
//! the cluster).
//!
//! In a cluster every command of a pipeline must hash to one slot: the
//! publisher splits what it sends by [`Slot`] (a channel's messages keep
//! their order, being in one pipeline and sent batch after batch).

use futures_util::StreamExt as _;
use hashbrown::HashMap;
use redis::aio::{ConnectionLike, MultiplexedConnection, PubSubSink, PubSubStream};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Cmd, Pipeline, PushKind, RedisFuture, RedisResult, Value};
use tokio::sync::mpsc;

use crate::config::BusKind;

/// Where the bus connects.
pub(super) enum Target {
    Single(redis::Client),
    Cluster(Box<ClusterClient>),
}

impl Target {
    /// The target of a Redis or Redis Cluster bus (already validated).
    pub fn new(bus: &BusKind) -> RedisResult<Self> {
        let urls = bus.redis_urls();
        if let BusKind::RedisCluster(_) = bus {
            let client = ClusterClientBuilder::new(urls)
                .use_protocol(redis::ProtocolVersion::RESP3)
                .build()?;
            return Ok(Self::Cluster(Box::new(client)));
        }
        let url = urls.first().map(String::as_str).unwrap_or_default();
        Ok(Self::Single(redis::Client::open(url)?))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// The command publishing to a channel.
    pub fn publish(&self) -> Cmd {
        redis::cmd(if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        })
    }

    /// A connection for commands and one for subscriptions.
    pub async fn connect(&self) -> RedisResult<(Conn, Subscriber)> {
        match self {
            Self::Single(client) => {
                let conn = client.get_multiplexed_async_connection().await?;
                let (sink, stream) = client.get_async_pubsub().await?.split();
                Ok((Conn::Single(conn), Subscriber::Single { sink, stream }))
            }
            Self::Cluster(client) => {
                // Pushes (messages, and a disconnection notice) come through
                // this channel; the config is per connection.
                let (tx, pushes) = mpsc::unbounded_channel();
                let config = redis::cluster::ClusterConfig::new().set_push_sender(tx);
                let conn = client.get_async_connection_with_config(config).await?;
                let subscriber = Subscriber::Cluster {
                    conn: conn.clone(),
                    pushes,
                };
                Ok((Conn::Cluster(conn), subscriber))
            }
        }
    }
}

/// A connection for commands.
#[derive(Clone)]
pub(super) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Subscriptions and the messages they bring.
pub(super) enum Subscriber {
    Single {
        sink: PubSubSink,
        stream: PubSubStream,
    },
    Cluster {
        conn: ClusterConnection,
        pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
    },
}

impl Subscriber {
    /// Subscribes to `channels` (in a cluster, one command per slot).
    pub async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Self::Single { sink, .. } => sink.subscribe(channels).await,
            Self::Cluster { conn, .. } => {
                for same_slot in by_slot(channels.iter().map(String::as_str)) {
                    let names: Vec<&str> =
                        same_slot.iter().map(|&i| channels[i].as_str()).collect();
                    conn.ssubscribe(names).await?;
                }
                Ok(())
            }
        }
    }

    pub async fn unsubscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Self::Single { sink, .. } => sink.unsubscribe(channel).await,
            Self::Cluster { conn, .. } => conn.sunsubscribe(channel).await,
        }
    }

    /// The payload of the next message; `None` once the connection (or, in a
    /// cluster, the connection to one of its nodes) was lost.
    pub async fn next(&mut self) -> Option<Payload> {
        match self {
            Self::Single { stream, .. } => stream.next().await.map(Payload::Message),
            Self::Cluster { pushes, .. } => loop {
                let push = pushes.recv().await?;
                match push.kind {
                    PushKind::SMessage => {
                        if let Some(Value::BulkString(payload)) = push.data.into_iter().nth(1) {
                            return Some(Payload::Pushed(payload));
                        }
                    }
                    PushKind::Disconnection => return None,
                    // Subscription confirmations, including the ones the
                    // client makes again after a reconnect or a slot move.
                    _ => {}
                }
            },
        }
    }
}

/// A message's payload, left where the connection that read it put it.
pub(super) enum Payload {
    Message(redis::Msg),
    Pushed(Vec<u8>),
}

impl std::ops::Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Message(m) => m.get_payload_bytes(),
            Self::Pushed(bytes) => bytes,
        }
    }
}

/// The positions of `names` grouped by the cluster slot of each name, each
/// group in its original order.
pub(super) fn by_slot<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: HashMap<Slot, usize> = HashMap::new();
    for (i, name) in names.into_iter().enumerate() {
        let group = *group_of.entry(Slot::for_key(name)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[group].push(i);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sharing_a_hash_tag_share_a_slot() {
        let names = [
            "{eu:chat:u:ann}",
            "x",
            "{eu:chat:u:ann}:ug",
            "{eu:chat:u:bob}",
        ];
        let groups = by_slot(names);
        assert!(groups.contains(&vec![0, 2]), "{groups:?}");
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 4);
    }
}
