//! Requests between nodes and their replies, and handling what arrives on
//! the bus.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use prost::Message as _;
use switchboard_proto::{ack::Status, bus::v1 as pb_bus};
use tokio::sync::mpsc;

use super::super::{Outcome, channels, deliver_local, ops, record};
use super::{Inner, humane};
use crate::router::Interest;

/// A request waiting for replies; forgets it when dropped.
pub(super) struct Waiting {
    inner: Arc<Inner>,
    id: u64,
    replies: mpsc::UnboundedReceiver<pb_bus::Reply>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.inner.pending.lock().remove(&self.id);
    }
}

fn reply_outcome(reply: &pb_bus::Reply) -> Outcome {
    match Status::try_from(reply.status) {
        Ok(Status::Ok) => Ok(()),
        Ok(status) => Err((status, reply.message.clone())),
        Err(_) => Err((Status::Error, reply.message.clone())),
    }
}

impl Inner {
    /// Publishes a request; returns how many nodes received it and where
    /// their replies arrive.
    pub(super) async fn ask(
        self: &Arc<Self>,
        channel: String,
        kind: pb_bus::request::Kind,
    ) -> Result<(i64, Waiting), (Status, String)> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, replies) = mpsc::unbounded_channel();
        self.pending.lock().insert(id, tx);
        let waiting = Waiting {
            inner: self.clone(),
            id,
            replies,
        };
        let request = pb_bus::Request {
            request_id: id,
            kind: Some(kind),
        };
        // The answer counts the subscribers the message reached: with
        // sharded pub/sub every subscriber of a channel is on the shard that
        // owns it, so the count is whole there too.
        let cmd = self.publish_cmd(&channel, pb_bus::envelope::Kind::Request(request));
        let value = self.execute(channel, cmd).await?;
        let receivers: i64 = ::redis::from_redis_value(value).unwrap_or(0);
        Ok((receivers, waiting))
    }

    /// Runs a request on the node holding connection `id` and returns its answer.
    pub(super) async fn directed(
        self: &Arc<Self>,
        node: &str,
        id: &str,
        kind: pb_bus::request::Kind,
    ) -> Outcome {
        let channel = channels::node(&self.prefix, node);
        let (receivers, mut waiting) = self.ask(channel, kind).await?;
        if receivers == 0 {
            return Err((
                Status::NotFound,
                format!(
                    "connection '{id}' is not connected (its node {node} is not in the cluster)"
                ),
            ));
        }
        match tokio::time::timeout(self.timeout, waiting.replies.recv()).await {
            Ok(Some(reply)) => reply_outcome(&reply),
            _ => Err((
                Status::Error,
                format!("node {node} did not answer within {}", humane(self.timeout)),
            )),
        }
    }

    /// Waits for `receivers` answers to an existence query: yes as soon as
    /// one says yes, no when all said no.
    pub(super) async fn any_yes(
        &self,
        receivers: i64,
        mut waiting: Waiting,
        local: Outcome,
    ) -> Outcome {
        let mut answered = 0;
        let deadline = tokio::time::Instant::now() + self.timeout;
        while answered < receivers {
            match tokio::time::timeout_at(deadline, waiting.replies.recv()).await {
                Ok(Some(reply)) => {
                    if reply_outcome(&reply).is_ok() {
                        return Ok(());
                    }
                    answered += 1;
                }
                _ => return Err(self.unanswered(receivers - answered, receivers)),
            }
        }
        local
    }

    /// The error when `missing` of `receivers` nodes did not answer in time.
    fn unanswered(&self, missing: i64, receivers: i64) -> (Status, String) {
        let within = humane(self.timeout);
        let message = format!("{missing} of {receivers} nodes did not answer within {within}");
        (Status::Error, message)
    }

    /// Waits for `receivers` answers, each of which must be OK.
    pub(super) async fn all_answer(&self, receivers: i64, mut waiting: Waiting) -> Outcome {
        let deadline = tokio::time::Instant::now() + self.timeout;
        for answered in 0..receivers {
            match tokio::time::timeout_at(deadline, waiting.replies.recv()).await {
                Ok(Some(reply)) => reply_outcome(&reply)?,
                _ => return Err(self.unanswered(receivers - answered, receivers)),
            }
        }
        Ok(())
    }

    /// Returns once this node hears the channel of `interest`, or no longer
    /// needs it, or lost Redis, or after the bus timeout.
    pub(super) async fn subscribed_to(&self, interest: &Interest) {
        let channel = channels::of(&self.prefix, interest);
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let notified = self.subscriptions.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.subscribed.lock().contains(&channel)
                || !self.connected.load(Ordering::Acquire)
                || !self.router.holds(interest)
            {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Handles one message from the bus.
    pub(super) fn receive(self: &Arc<Self>, payload: &[u8]) {
        use pb_bus::envelope::Kind;
        let envelope = match pb_bus::Envelope::decode(payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable message on the cluster bus ignored");
                return;
            }
        };
        let own = envelope.origin == self.node.as_str();
        if own && matches!(envelope.kind, Some(Kind::Send(_))) {
            return; // delivered locally when published
        }
        if !own {
            self.metrics.bus_received.inc();
        }
        match envelope.kind {
            Some(Kind::Send(send)) => {
                let started = Instant::now();
                match deliver_local(&self.router, &send) {
                    Ok(delivery) => record(&self.metrics, started, delivery),
                    Err(e) => {
                        tracing::warn!(origin = %envelope.origin, error = %e, "send from another node refused")
                    }
                }
            }
            Some(Kind::Request(request)) => self.answer(envelope.origin, request),
            Some(Kind::Reply(reply)) => {
                if let Some(tx) = self.pending.lock().get(&reply.request_id) {
                    let _ = tx.send(reply);
                }
            }
            None => {}
        }
    }

    /// Runs a request on this node's connections and replies to `origin`;
    /// a group add is answered once this node hears the group's channel,
    /// so a send to the group right after the ack reaches the new member.
    pub(super) fn answer(self: &Arc<Self>, origin: String, request: pb_bus::Request) {
        use pb_bus::request::Kind;
        let mut heard = None;
        let outcome = match request.kind {
            Some(Kind::GroupChange(change)) => ops::check_group_change(&change).and_then(|c| {
                let applied = match c.member {
                    ops::Member::Connection(id) => {
                        ops::group_change_connection(&self.router, &change, id)?;
                        true
                    }
                    ops::Member::User(user) => self.apply_user_group(&change, &c.hub, user, c.add),
                };
                if applied && c.add {
                    heard = Some(Interest::Group(
                        c.hub.as_str().into(),
                        change.group.as_str().into(),
                    ));
                }
                Ok(())
            }),
            Some(Kind::Close(close)) => ops::close(&self.router, &close),
            Some(Kind::Query(query)) => ops::query(&self.router, &query),
            None => Err((Status::Error, "empty request".into())),
        };
        let (status, message) = match outcome {
            Ok(()) => (Status::Ok, String::new()),
            Err(e) => e,
        };
        let reply = pb_bus::envelope::Kind::Reply(pb_bus::Reply {
            request_id: request.request_id,
            status: status as i32,
            message,
        });
        let channel = channels::node(&self.prefix, &origin);
        match heard {
            None => self.publish(channel, reply),
            Some(interest) => {
                // The subscription is made by the task that called this: wait elsewhere.
                let inner = self.clone();
                tokio::spawn(async move {
                    inner.subscribed_to(&interest).await;
                    inner.publish(channel, reply);
                });
            }
        }
    }
}
