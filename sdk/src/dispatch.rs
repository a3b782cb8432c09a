//! Runs what the proxy asks for: tracks the connections assigned to this app
//! server and runs their connect handler, invocations and disconnect handler
//! one at a time, in arrival order, while different connections run
//! concurrently.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use switchboard_proto::server_message::Kind;
use switchboard_proto::{
    ClientInvocation, ConnectionClosed, ConnectionOpened, InvocationResult, Payload, Void,
    invocation_result, proxy_message,
};
use tokio::sync::Notify;

use crate::context::{Connection, Context, Disconnect, HubContext};
use crate::hub::{Completion, Hub, texts};
use crate::link::Outbox;

/// Invocations a single connection may have waiting before further ones
/// are refused, so one flooding client cannot grow memory without bound.
pub(crate) const MAX_QUEUED_PER_CONNECTION: usize = 256;

/// Close reason sent when the connect handler fails, as the reference
/// server words it.
const CONNECT_FAILED: &str = "Connection closed with an error.";

pub(crate) struct Dispatcher {
    /// Keyed by lower-cased hub name.
    hubs: HashMap<String, (Hub, HubContext)>,
    outbox: Arc<Outbox>,
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
    queue: Mutex<Queue>,
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
    Invoke(ClientInvocation),
    Disconnected(Disconnect),
}

impl Dispatcher {
    pub(crate) fn new(hubs: Vec<Hub>, outbox: Arc<Outbox>) -> Self {
        let hubs = hubs
            .into_iter()
            .map(|hub| {
                let ctx = HubContext::new(hub.name().to_owned(), outbox.clone());
                (hub.name().to_lowercase(), (hub, ctx))
            })
            .collect();
        Self {
            hubs,
            outbox,
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

    /// Handles one message from the proxy without blocking the reader.
    pub(crate) fn handle(self: &Arc<Self>, kind: proxy_message::Kind) {
        use proxy_message::Kind as K;
        match kind {
            K::ConnectionOpened(opened) => self.opened(opened),
            K::ConnectionClosed(closed) => self.closed(closed),
            K::ClientInvocation(invocation) => self.invocation(invocation),
            K::Ack(ack) => self.outbox.acknowledge(ack),
            K::Ping(_) | K::Welcome(_) => {}
            K::ClientStreamItem(_)
            | K::ClientStreamCompletion(_)
            | K::CancelInvocation(_)
            | K::ClientResult(_) => {
                tracing::debug!("ignoring a streaming or client-result message: not supported");
            }
        }
    }

    /// The link is gone: the proxy moves its connections elsewhere, so each
    /// one ends here.
    pub(crate) fn link_lost(self: &Arc<Self>) {
        let slots: Vec<_> = self
            .connections
            .lock()
            .drain()
            .map(|(_, slot)| slot)
            .collect();
        for slot in slots {
            self.enqueue(&slot, Job::Disconnected(Disconnect::link_lost()));
        }
    }

    /// Number of connections currently assigned here.
    pub(crate) fn connection_count(&self) -> usize {
        self.connections.lock().len()
    }

    fn opened(self: &Arc<Self>, opened: ConnectionOpened) {
        let (hub, hub_ctx) = self.lookup(&opened.hub);
        let id = opened.connection.clone();
        let slot = Arc::new(Slot {
            hub,
            ctx: Context::new(hub_ctx, Arc::new(Connection::from_opened(opened))),
            queue: Mutex::new(Queue::default()),
        });
        let previous = self.connections.lock().insert(id, slot.clone());
        if let Some(previous) = previous {
            // Announced twice: end the old one so its handlers stay paired.
            self.enqueue(&previous, Job::Disconnected(Disconnect::link_lost()));
        }
        self.enqueue(&slot, Job::Connected);
    }

    fn closed(self: &Arc<Self>, closed: ConnectionClosed) {
        let slot = self.connections.lock().remove(&closed.connection);
        if let Some(slot) = slot {
            let disconnect = Disconnect {
                reason: closed.reason,
                error: Some(closed.error).filter(|error| !error.is_empty()),
            };
            self.enqueue(&slot, Job::Disconnected(disconnect));
        }
    }

    fn invocation(self: &Arc<Self>, invocation: ClientInvocation) {
        let slot = {
            let mut connections = self.connections.lock();
            match connections.get(&invocation.connection) {
                Some(slot) => slot.clone(),
                None => {
                    // Not announced (should not happen): serve it anyway,
                    // with what the invocation tells.
                    tracing::debug!(connection = %invocation.connection, "invocation from an unannounced connection");
                    let (hub, hub_ctx) = self.lookup(&invocation.hub);
                    let connection = Connection::unannounced(invocation.connection.clone());
                    let slot = Arc::new(Slot {
                        hub,
                        ctx: Context::new(hub_ctx, Arc::new(connection)),
                        queue: Mutex::new(Queue::default()),
                    });
                    connections.insert(invocation.connection.clone(), slot.clone());
                    slot
                }
            }
        };
        self.enqueue(&slot, Job::Invoke(invocation));
    }

    fn lookup(&self, hub: &str) -> (Option<Hub>, HubContext) {
        match self.hubs.get(&hub.to_lowercase()) {
            Some((hub, ctx)) => (Some(hub.clone()), ctx.clone()),
            None => {
                tracing::warn!(hub, "the proxy sent a connection for a hub not served here");
                (None, HubContext::new(hub.to_owned(), self.outbox.clone()))
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
                let error = Completion::Error(texts::unexpected(&invocation.target));
                if let Some(result) = result_message(invocation, error) {
                    let outbox = self.outbox.clone();
                    tokio::spawn(async move { outbox.send(result).await });
                }
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

    async fn run(&self, slot: &Slot, job: Job) {
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
            Job::Invoke(invocation) => {
                let completion = match &slot.hub {
                    Some(hub) => {
                        let args = invocation
                            .arguments
                            .clone()
                            .unwrap_or_else(|| Payload::json("[]"));
                        hub.invoke(ctx, &invocation.target, &args, invocation.streaming)
                            .await
                    }
                    None => Completion::Error(texts::method_does_not_exist(&invocation.target)),
                };
                if let Some(result) = result_message(&invocation, completion)
                    && let Err(err) = self.outbox.send(result).await
                {
                    tracing::debug!(
                        connection = %invocation.connection,
                        error = %err,
                        "cannot deliver invocation result"
                    );
                }
            }
        }
    }
}

/// The `InvocationResult` for an invocation, or `None` when the client did
/// not ask for one.
fn result_message(invocation: &ClientInvocation, completion: Completion) -> Option<Kind> {
    if invocation.invocation_id.is_empty() {
        return None;
    }
    let outcome = match completion {
        Completion::Value(json) => invocation_result::Outcome::Value(Payload::json(json)),
        Completion::Void => invocation_result::Outcome::Void(Void {}),
        Completion::Error(text) => invocation_result::Outcome::Error(text),
    };
    Some(Kind::InvocationResult(InvocationResult {
        connection: invocation.connection.clone(),
        invocation_id: invocation.invocation_id.clone(),
        outcome: Some(outcome),
    }))
}
