//! Runs what the proxy asks for: tracks the connections assigned to this app
//! server (and the link each arrived on, so replies go back the same way)
//! and runs their connect handler, invocations and disconnect handler
//! one at a time, in arrival order, while different connections run
//! concurrently. Server-to-client streams and methods reading upload
//! streams run beside that order once started, as in SignalR.

mod streams;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use switchboard_proto::server_message::Kind;
use switchboard_proto::{
    CancelInvocation, ClientInvocation, ClientStreamCompletion, ClientStreamItem, ConnectionClosed,
    ConnectionOpened, InvocationResult, Payload, Void, invocation_result, proxy_message,
};
use tokio::sync::{Notify, oneshot};

use crate::context::{Connection, Context, Disconnect, HubContext};
use crate::hub::upload::{self, Uploads};
use crate::hub::{Completion, Hub, Started, texts};
use crate::link::Peer;
use crate::links::Links;
use streams::Live;

/// Invocations a single connection may have waiting before further ones
/// are refused, so one flooding client cannot grow memory without bound.
pub(crate) const MAX_QUEUED_PER_CONNECTION: usize = 256;

/// Close reason sent when the connect handler fails, as the reference
/// server words it.
const CONNECT_FAILED: &str = "Connection closed with an error.";

pub(crate) struct Dispatcher {
    /// Keyed by lower-cased hub name.
    hubs: HashMap<String, (Hub, HubContext)>,
    links: Arc<Links>,
    connections: Mutex<HashMap<String, Arc<Slot>>>,
    /// Connections whose queue is being drained right now.
    busy: AtomicUsize,
    /// Woken whenever `busy` drops to zero.
    idle: Notify,
}

/// One connection's state and its queue of work.
struct Slot {
    hub: Option<Hub>,
    ctx: Context,
    /// The link the connection arrived on; the proxy's failover may move it.
    link: Mutex<Arc<Peer>>,
    queue: Mutex<Queue>,
    live: Mutex<Live>,
}

impl Slot {
    fn new(hub: Option<Hub>, ctx: Context, link: Arc<Peer>) -> Self {
        Self {
            hub,
            ctx,
            link: Mutex::new(link),
            queue: Mutex::new(Queue::default()),
            live: Mutex::new(Live::default()),
        }
    }

    fn link(&self) -> Arc<Peer> {
        self.link.lock().clone()
    }

    fn arrived_on(&self, peer: &Arc<Peer>) -> bool {
        Arc::ptr_eq(&self.link.lock(), peer)
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    invocations: usize,
    /// A task is draining this queue; only one at a time keeps the order.
    running: bool,
}

enum Job {
    Connected,
    Invoke(Box<Invocation>),
    Disconnected(Disconnect),
}

/// A client invocation with the channels opened for it on arrival, so
/// stream items and cancellations that overtake a queued invocation are
/// not lost.
struct Invocation {
    message: ClientInvocation,
    uploads: Uploads,
    /// For a stream: resolves when the client cancels it or goes away.
    cancel: Option<oneshot::Receiver<()>>,
}

/// Counts a running handler or stream for `wait_idle`, until dropped.
struct Busy(Arc<Dispatcher>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Dispatcher {
    pub(crate) fn new(hubs: Vec<Hub>, links: Arc<Links>) -> Self {
        let hubs = hubs
            .into_iter()
            .map(|hub| {
                let ctx = HubContext::new(hub.name().to_owned(), links.clone());
                (hub.name().to_lowercase(), (hub, ctx))
            })
            .collect();
        Self {
            hubs,
            links,
            connections: Mutex::new(HashMap::new()),
            busy: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }

    /// Waits until no handler runs, or `grace` passed; `false` on timeout.
    pub(crate) async fn wait_idle(&self, grace: Duration) -> bool {
        let idle = async {
            loop {
                // Register interest before checking, so a wake-up between
                // the check and the wait is not lost.
                let notified = self.idle.notified();
                if self.busy.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(grace, idle).await.is_ok()
    }

    /// The names of the hubs served, as registered.
    pub(crate) fn hub_names(&self) -> Vec<String> {
        self.hubs
            .values()
            .map(|(hub, _)| hub.name().to_owned())
            .collect()
    }

    /// The context of a served hub (any case).
    pub(crate) fn hub_context(&self, name: &str) -> Option<HubContext> {
        self.hubs
            .get(&name.to_lowercase())
            .map(|(_, ctx)| ctx.clone())
    }

    /// Handles one message that arrived on `peer`'s link without blocking
    /// the reader.
    pub(crate) fn handle(self: &Arc<Self>, peer: &Arc<Peer>, kind: proxy_message::Kind) {
        use proxy_message::Kind as K;
        match kind {
            K::ConnectionOpened(opened) => self.opened(peer, opened),
            K::ConnectionClosed(closed) => self.closed(peer, closed),
            K::ClientInvocation(invocation) => self.invocation(peer, invocation),
            K::ClientStreamItem(item) => self.stream_item(item),
            K::ClientStreamCompletion(completion) => self.stream_completion(completion),
            K::CancelInvocation(cancel) => self.cancel(cancel),
            K::ClientResult(result) => peer.outbox.client_result(result),
            K::Ack(ack) => peer.outbox.acknowledge(ack),
            K::NodeStatus(status) => {
                tracing::info!(address = %peer.target.address, ready = status.ready, "proxy node standing changed");
                peer.set_node_ready(status.ready);
            }
            K::Ping(_) | K::Welcome(_) => {}
        }
    }

    /// The link a connection arrived on, while it is assigned here.
    pub(crate) fn home(&self, connection: &str) -> Option<Arc<Peer>> {
        self.connections
            .lock()
            .get(connection)
            .map(|slot| slot.link())
    }

    /// `peer`'s link is gone: the proxy moves its connections elsewhere, so
    /// each one that arrived on it ends here. Others keep running.
    pub(crate) fn link_lost(self: &Arc<Self>, peer: &Arc<Peer>) {
        let slots: Vec<_> = {
            let mut connections = self.connections.lock();
            let lost: Vec<String> = connections
                .iter()
                .filter(|(_, slot)| slot.arrived_on(peer))
                .map(|(id, _)| id.clone())
                .collect();
            lost.iter()
                .filter_map(|id| connections.remove(id))
                .collect()
        };
        for slot in slots {
            slot.live.lock().end();
            self.enqueue(&slot, Job::Disconnected(Disconnect::link_lost()));
        }
    }

    /// Number of connections currently assigned here.
    pub(crate) fn connection_count(&self) -> usize {
        self.connections.lock().len()
    }

    fn opened(self: &Arc<Self>, peer: &Arc<Peer>, opened: ConnectionOpened) {
        if opened.migrated {
            let existing = self.connections.lock().get(&opened.connection).cloned();
            if let Some(slot) = existing
                && !slot.arrived_on(peer)
            {
                // Failover moved it to another link of this app server: it
                // lives on, now answered through that link.
                *slot.link.lock() = peer.clone();
                return;
            }
        }
        let (hub, hub_ctx) = self.lookup(&opened.hub);
        let id = opened.connection.clone();
        let ctx = Context::new(hub_ctx, Arc::new(Connection::from_opened(opened)));
        let slot = Arc::new(Slot::new(hub, ctx, peer.clone()));
        let previous = self.connections.lock().insert(id, slot.clone());
        if let Some(previous) = previous {
            // Announced twice: end the old one so its handlers stay paired.
            previous.live.lock().end();
            self.enqueue(&previous, Job::Disconnected(Disconnect::link_lost()));
        }
        self.enqueue(&slot, Job::Connected);
    }

    fn closed(self: &Arc<Self>, peer: &Arc<Peer>, closed: ConnectionClosed) {
        let slot = {
            let mut connections = self.connections.lock();
            // A close from a link the connection has moved away from is stale.
            match connections.get(&closed.connection) {
                Some(slot) if slot.arrived_on(peer) => connections.remove(&closed.connection),
                _ => None,
            }
        };
        if let Some(slot) = slot {
            // Streams of a closed connection stop; uploads end unfinished.
            slot.live.lock().end();
            let disconnect = Disconnect {
                reason: closed.reason,
                error: Some(closed.error).filter(|error| !error.is_empty()),
            };
            self.enqueue(&slot, Job::Disconnected(disconnect));
        }
    }

    fn invocation(self: &Arc<Self>, peer: &Arc<Peer>, invocation: ClientInvocation) {
        let slot = {
            let mut connections = self.connections.lock();
            match connections.get(&invocation.connection) {
                Some(slot) => {
                    if !slot.arrived_on(peer) {
                        // The proxy moved it without saying: answer where
                        // it asks from.
                        *slot.link.lock() = peer.clone();
                    }
                    slot.clone()
                }
                None => {
                    // Not announced (should not happen): serve it anyway,
                    // with what the invocation tells.
                    tracing::debug!(connection = %invocation.connection, "invocation from an unannounced connection");
                    let (hub, hub_ctx) = self.lookup(&invocation.hub);
                    let encoding = invocation
                        .arguments
                        .as_ref()
                        .map_or(switchboard_proto::Encoding::Json, Payload::encoding);
                    let connection =
                        Connection::unannounced(invocation.connection.clone(), encoding);
                    let slot = Arc::new(Slot::new(
                        hub,
                        Context::new(hub_ctx, Arc::new(connection)),
                        peer.clone(),
                    ));
                    connections.insert(invocation.connection.clone(), slot.clone());
                    slot
                }
            }
        };
        let (uploads, cancel) = {
            let mut live = slot.live.lock();
            if invocation.streaming && live.streams.contains_key(&invocation.invocation_id) {
                drop(live);
                // Leave the running stream alone; only refuse the newcomer.
                let error =
                    Completion::Error(texts::invocation_id_in_use(&invocation.invocation_id));
                reply_later(&slot, &invocation, error);
                return;
            }
            let uploads = invocation
                .stream_ids
                .iter()
                .map(|stream_id| {
                    let (feed, upload) = upload::channel();
                    live.uploads.insert(stream_id.clone(), feed);
                    upload
                })
                .collect();
            let cancel = invocation.streaming.then(|| {
                let (cancel_tx, cancel_rx) = oneshot::channel();
                live.streams
                    .insert(invocation.invocation_id.clone(), cancel_tx);
                cancel_rx
            });
            (Uploads::new(uploads), cancel)
        };
        self.enqueue(
            &slot,
            Job::Invoke(Box::new(Invocation {
                message: invocation,
                uploads,
                cancel,
            })),
        );
    }

    fn stream_item(&self, item: ClientStreamItem) {
        let Some(slot) = self.slot(&item.connection) else {
            return;
        };
        let payload = item.item.unwrap_or_else(|| Payload::json("null"));
        slot.live.lock().upload_item(&item.stream_id, payload);
    }

    fn stream_completion(&self, completion: ClientStreamCompletion) {
        if let Some(slot) = self.slot(&completion.connection) {
            slot.live
                .lock()
                .upload_complete(&completion.stream_id, completion.error);
        }
    }

    fn cancel(&self, cancel: CancelInvocation) {
        if let Some(slot) = self.slot(&cancel.connection) {
            slot.live.lock().cancel(&cancel.invocation_id);
        }
    }

    fn slot(&self, connection: &str) -> Option<Arc<Slot>> {
        let slot = self.connections.lock().get(connection).cloned();
        if slot.is_none() {
            tracing::debug!(%connection, "stream message for an unknown connection");
        }
        slot
    }

    /// Counts work running outside a connection's queue.
    fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    fn lookup(&self, hub: &str) -> (Option<Hub>, HubContext) {
        match self.hubs.get(&hub.to_lowercase()) {
            Some((hub, ctx)) => (Some(hub.clone()), ctx.clone()),
            None => {
                tracing::warn!(hub, "the proxy sent a connection for a hub not served here");
                (None, HubContext::new(hub.to_owned(), self.links.clone()))
            }
        }
    }

    fn enqueue(self: &Arc<Self>, slot: &Arc<Slot>, job: Job) {
        let mut queue = slot.queue.lock();
        if let Job::Invoke(invocation) = &job {
            if queue.invocations >= MAX_QUEUED_PER_CONNECTION {
                tracing::warn!(
                    connection = slot.ctx.connection_id(),
                    "too many queued invocations; refusing"
                );
                let invocation = &invocation.message;
                slot.live.lock().forget(invocation);
                let error = Completion::Error(texts::unexpected(&invocation.target));
                reply_later(slot, invocation, error);
                return;
            }
            queue.invocations += 1;
        }
        queue.jobs.push_back(job);
        if !queue.running {
            queue.running = true;
            self.busy.fetch_add(1, Ordering::AcqRel);
            tokio::spawn(self.clone().drain(slot.clone()));
        }
    }

    /// Runs a connection's jobs in order until its queue is empty.
    async fn drain(self: Arc<Self>, slot: Arc<Slot>) {
        loop {
            let job = {
                let mut queue = slot.queue.lock();
                match queue.jobs.pop_front() {
                    Some(job) => {
                        if matches!(job, Job::Invoke(_)) {
                            queue.invocations -= 1;
                        }
                        job
                    }
                    None => {
                        queue.running = false;
                        drop(queue);
                        if self.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
                            self.idle.notify_waiters();
                        }
                        return;
                    }
                }
            };
            self.run(&slot, job).await;
        }
    }

    async fn run(self: &Arc<Self>, slot: &Arc<Slot>, job: Job) {
        let ctx = slot.ctx.clone();
        match job {
            Job::Connected => {
                let Some(hub) = &slot.hub else { return };
                if !hub.connected(ctx.clone()).await
                    && let Err(err) = ctx.close(CONNECT_FAILED, false).await
                {
                    tracing::debug!(connection = ctx.connection_id(), error = %err, "cannot close connection");
                }
            }
            Job::Disconnected(disconnect) => {
                if let Some(hub) = &slot.hub {
                    hub.disconnected(ctx, disconnect).await;
                }
            }
            Job::Invoke(invocation) => self.invoke(slot, *invocation).await,
        }
    }

    /// Runs one invocation. Plain methods finish before the queue moves on;
    /// methods reading upload streams and streaming methods (once their
    /// stream exists) continue in their own task.
    async fn invoke(self: &Arc<Self>, slot: &Arc<Slot>, invocation: Invocation) {
        let Invocation {
            message,
            uploads,
            cancel,
        } = invocation;
        let started = match &slot.hub {
            Some(hub) => {
                let args = message
                    .arguments
                    .clone()
                    .unwrap_or_else(|| Payload::json("[]"));
                hub.start(
                    slot.ctx.clone(),
                    &message.target,
                    &args,
                    uploads,
                    message.streaming,
                )
            }
            None => Started::Refused(texts::method_does_not_exist(&message.target)),
        };
        match started {
            Started::Refused(error) => {
                slot.live.lock().forget(&message);
                reply(slot, &message, Completion::Error(error)).await;
            }
            Started::Unary(future) if !message.stream_ids.is_empty() => {
                let busy = self.busy();
                let slot = slot.clone();
                tokio::spawn(async move {
                    let completion = future.await;
                    slot.live.lock().forget(&message);
                    reply(&slot, &message, completion).await;
                    drop(busy);
                });
            }
            Started::Unary(future) => {
                let completion = future.await;
                reply(slot, &message, completion).await;
            }
            Started::Stream(future) => match future.await {
                Err(completion) => {
                    slot.live.lock().forget(&message);
                    reply(slot, &message, completion).await;
                }
                Ok(items) => {
                    let busy = self.busy();
                    let slot = slot.clone();
                    tokio::spawn(async move {
                        let completion =
                            streams::pump(|| slot.link(), &message, items, cancel).await;
                        slot.live.lock().forget(&message);
                        reply(&slot, &message, completion).await;
                        drop(busy);
                    });
                }
            },
        }
    }
}

/// Replies without making the caller wait (the link reader must not).
fn reply_later(slot: &Slot, invocation: &ClientInvocation, completion: Completion) {
    if let Some(result) = result_message(invocation, completion) {
        let link = slot.link();
        tokio::spawn(async move { link.outbox.send(result).await });
    }
}

/// Replies through the link the connection is on.
async fn reply(slot: &Slot, invocation: &ClientInvocation, completion: Completion) {
    if let Some(result) = result_message(invocation, completion)
        && let Err(err) = slot.link().outbox.send(result).await
    {
        tracing::debug!(
            connection = %invocation.connection,
            error = %err,
            "cannot deliver invocation result"
        );
    }
}

/// The `InvocationResult` for an invocation, or `None` when the client did
/// not ask for one.
fn result_message(invocation: &ClientInvocation, completion: Completion) -> Option<Kind> {
    if invocation.invocation_id.is_empty() {
        return None;
    }
    let outcome = match completion {
        Completion::Value(payload) => invocation_result::Outcome::Value(payload),
        Completion::Void => invocation_result::Outcome::Void(Void {}),
        Completion::Error(text) => invocation_result::Outcome::Error(text),
    };
    Some(Kind::InvocationResult(InvocationResult {
        connection: invocation.connection.clone(),
        invocation_id: invocation.invocation_id.clone(),
        outcome: Some(outcome),
    }))
}
