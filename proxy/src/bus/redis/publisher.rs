//! Everything this node sends to Redis goes through one queue, drained by one
//! task into pipelines on one connection, so what the node publishes keeps
//! its order (in a cluster, one pipeline per slot: a channel's messages still
//! keep theirs).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prost::Message as _;
use switchboard_proto::{ack::Status, bus::v1 as pb_bus};
use tokio::sync::{mpsc, oneshot, watch};

use super::conn::by_slot;
use super::{Inner, MAX_PIPELINE, Outgoing, stopping};

impl Inner {
    pub(super) fn envelope(&self, kind: pb_bus::envelope::Kind) -> Vec<u8> {
        pb_bus::Envelope {
            origin: self.node.to_string(),
            kind: Some(kind),
        }
        .encode_to_vec()
    }

    pub(super) fn not_connected(&self) -> String {
        let why = self.readiness.borrow().reason.clone();
        format!("not connected to the cluster bus ({why})")
    }

    /// Counts messages that could not reach the other nodes.
    pub(super) fn lost(&self, n: u64, why: &str) {
        self.metrics.bus_publish_failures.inc_by(n);
        if self.lost.fetch_add(n, Ordering::Relaxed) == 0 {
            tracing::warn!(bus = %self.url, reason = why, "messages to other nodes are being dropped until the bus is back");
        }
    }

    /// Publishes fire-and-forget; a message that cannot be queued is lost.
    pub(super) fn publish(&self, channel: String, kind: pb_bus::envelope::Kind) {
        if !self.connected.load(Ordering::Acquire) {
            return self.lost(1, "not connected to Redis");
        }
        let queued = self.out.try_send(Outgoing {
            cmd: self.publish_cmd(&channel, kind),
            name: channel,
            reply: None,
        });
        if queued.is_err() {
            self.lost(1, "the publish queue is full");
        }
    }

    /// `PUBLISH` (`SPUBLISH` in a cluster) of `kind` to `channel`.
    pub(super) fn publish_cmd(&self, channel: &str, kind: pb_bus::envelope::Kind) -> ::redis::Cmd {
        let mut cmd = self.target.publish();
        cmd.arg(channel).arg(self.envelope(kind));
        cmd
    }

    /// Queues `cmd`, about the channel or key `name`, and waits for its answer.
    pub(super) async fn execute(
        &self,
        name: String,
        cmd: ::redis::Cmd,
    ) -> Result<::redis::Value, (Status, String)> {
        if !self.connected.load(Ordering::Acquire) {
            return Err((Status::Error, self.not_connected()));
        }
        let (tx, rx) = oneshot::channel();
        self.out
            .try_send(Outgoing {
                cmd,
                name,
                reply: Some(tx),
            })
            .map_err(|_| {
                (
                    Status::Error,
                    "the cluster bus publish queue is full".into(),
                )
            })?;
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err((Status::Error, format!("cluster bus: {e}"))),
            Err(_) => Err((Status::Error, self.not_connected())),
        }
    }
}

/// Sends queued commands to Redis in order, pipelining what is queued.
pub(super) async fn publisher(
    inner: Arc<Inner>,
    mut queue: mpsc::Receiver<Outgoing>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut batch: Vec<Outgoing> = Vec::new();
    loop {
        let first = tokio::select! {
            _ = stopping(&mut stopped) => return,
            next = queue.recv() => match next {
                Some(o) => o,
                None => return,
            },
        };
        batch.push(first);
        while batch.len() < MAX_PIPELINE {
            match queue.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let conn = inner.conn.lock().clone();
        let result = match conn {
            None => Err("not connected to Redis".to_owned()),
            Some(conn) => send(&inner, conn, &batch).await,
        };
        match result {
            Ok(values) => {
                inner.metrics.bus_published.inc_by(n);
                let mut values = values.into_iter();
                for o in batch.drain(..) {
                    let value = values
                        .next()
                        .ok_or_else(|| "no answer from Redis".to_owned());
                    if let Some(reply) = o.reply {
                        let _ = reply.send(value);
                    }
                }
            }
            Err(e) => {
                inner.lost(n, &e);
                for o in batch.drain(..) {
                    if let Some(reply) = o.reply {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

/// Sends `batch` as one pipeline (one per slot in a cluster, side by side);
/// the answers in the batch's order.
async fn send(
    inner: &Inner,
    conn: super::conn::Conn,
    batch: &[Outgoing],
) -> Result<Vec<::redis::Value>, String> {
    let groups = if inner.target.is_cluster() {
        by_slot(batch.iter().map(|o| o.name.as_str()))
    } else {
        vec![(0..batch.len()).collect()]
    };
    let pipelines = groups.iter().map(|group| {
        let mut conn = conn.clone();
        let mut pipe = ::redis::pipe();
        for &i in group {
            pipe.add_command(batch[i].cmd.clone());
        }
        async move { pipe.query_async::<Vec<::redis::Value>>(&mut conn).await }
    });
    let answers = futures_util::future::join_all(pipelines).await;
    let mut values = vec![::redis::Value::Nil; batch.len()];
    for (group, answer) in groups.iter().zip(answers) {
        let answer = answer.map_err(|e| e.to_string())?;
        for (&i, value) in group.iter().zip(answer) {
            values[i] = value;
        }
    }
    Ok(values)
}
