//! App-server links: the gRPC `Upstream.Link` service on the upstream port.
//!
//! Each app server holds one bidirectional stream per proxy. The link is
//! authenticated with a JWT (server audience), opens with `Hello`/`Welcome`,
//! and then carries client events and invocations down, and sends, group
//! changes and results up. When a link ends, its connections move to another
//! link serving the hub, or are closed with `allowReconnect` when none is
//! left.

pub mod dispatch;
pub mod registry;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use switchboard_proto::{self as pb, ProxyFrame, ProxyMessage, ServerFrame, proxy_message::Kind};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tonic::{Request, Response, Status, Streaming};

use crate::Shared;
use crate::auth;
use crate::connection::close::{Close, CloseReason};
use crate::connection::handle::Handle;
use crate::metrics::HubLabels;
use crate::tls::{Port, Reloading, TlsListener};

/// Messages that may wait for an app server that is slow to read.
const LINK_QUEUE: usize = 4096;
/// Most messages batched into one gRPC frame.
const MAX_BATCH: usize = 256;
/// Time an app server has to send `Hello` after opening the stream.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The link's app server went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the app server link is gone")]
pub struct LinkGone;

/// One app server's link to this proxy.
pub struct Link {
    pub id: u64,
    pub server_id: String,
    /// Lower-case hub names served.
    pub hubs: Vec<Arc<str>>,
    tx: mpsc::Sender<ProxyMessage>,
    load: AtomicUsize,
    dead: AtomicBool,
    gone: Notify,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("id", &self.id)
            .field("server_id", &self.server_id)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Queues a message for the app server, waiting if its queue is full.
    ///
    /// Not an `async fn`: every connection's task awaits this while handling
    /// client messages, and an async fn would keep room for the message and
    /// the channel's send future inside each of those tasks for their whole
    /// life. The common case (room in the queue) completes at once; only a
    /// full queue allocates the waiting future.
    pub fn send(&self, kind: Kind) -> impl Future<Output = Result<(), LinkGone>> + Send + '_ {
        use tokio::sync::mpsc::error::TrySendError;
        let waiting = if self.dead.load(Ordering::Acquire) {
            Err(LinkGone)
        } else {
            match self.tx.try_send(ProxyMessage { kind: Some(kind) }) {
                Ok(()) => Ok(None),
                Err(TrySendError::Closed(_)) => Err(LinkGone),
                Err(TrySendError::Full(message)) => Ok(Some(Box::pin(self.tx.send(message)))),
            }
        };
        async move {
            match waiting? {
                None => Ok(()),
                Some(send) => send.await.map_err(|_| LinkGone),
            }
        }
    }

    /// Connections currently assigned to this link.
    pub fn load(&self) -> usize {
        self.load.load(Ordering::Relaxed)
    }

    pub fn add_load(&self) {
        self.load.fetch_add(1, Ordering::Relaxed);
    }

    pub fn remove_load(&self) {
        self.load.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    fn kill(&self) {
        self.dead.store(true, Ordering::Release);
        self.gone.notify_one();
    }
}

/// The `ConnectionOpened` message announcing `handle` to an app server.
pub fn connection_opened(handle: &Handle, migrated: bool) -> Kind {
    let m = &handle.meta;
    Kind::ConnectionOpened(pb::ConnectionOpened {
        connection: handle.id.to_string(),
        hub: handle.hub.to_string(),
        user_id: handle.user.as_deref().unwrap_or_default().to_owned(),
        claims: m.claims.iter().cloned().collect(),
        protocol: handle.protocol.name().to_owned(),
        transport: m.transport.to_owned(),
        remote_address: m.remote_address.clone(),
        query: m.query.clone(),
        headers: m.headers.iter().cloned().collect(),
        migrated,
    })
}

struct Service {
    shared: Arc<Shared>,
}

type LinkStream = Pin<Box<dyn Stream<Item = Result<ProxyFrame, Status>> + Send>>;

#[tonic::async_trait]
impl pb::upstream_server::Upstream for Service {
    type LinkStream = LinkStream;

    async fn link(
        &self,
        request: Request<Streaming<ServerFrame>>,
    ) -> Result<Response<LinkStream>, Status> {
        let shared = &self.shared;
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .unwrap_or_default();
        let audience = auth::server_audience(&shared.config.public_url);
        if let Err(e) = shared.keys.validate(token, &audience) {
            tracing::warn!(error = %e, "app-server link refused");
            return Err(Status::unauthenticated(format!(
                "app-server token refused: {e}"
            )));
        }
        if shared.is_draining() {
            return Err(Status::unavailable("proxy is shutting down"));
        }
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Hello within 10s"))??
            .ok_or_else(|| Status::invalid_argument("stream ended before Hello"))?;
        let mut messages = first.messages.into_iter();
        let hello = match messages.next().and_then(|m| m.kind) {
            Some(pb::server_message::Kind::Hello(h)) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message on a link must be Hello",
                ));
            }
        };
        let hubs: Vec<Arc<str>> = hello
            .hubs
            .iter()
            .map(|h| Arc::from(h.to_ascii_lowercase()))
            .collect();
        if hubs.is_empty() || hubs.iter().any(|h| h.is_empty()) {
            return Err(Status::invalid_argument(
                "Hello must name at least one hub, and no empty names",
            ));
        }
        let (tx, rx) = mpsc::channel(LINK_QUEUE);
        let link = Arc::new(Link {
            id: shared.links.next_id(),
            server_id: hello.server_id,
            hubs,
            tx,
            load: AtomicUsize::new(0),
            dead: AtomicBool::new(false),
            gone: Notify::new(),
        });
        let welcome = Kind::Welcome(pb::Welcome {
            node_id: shared.node_id.to_string(),
            hubs: link.hubs.iter().map(|h| h.to_string()).collect(),
            max_message_bytes: u32::try_from(shared.config.max_message_size).unwrap_or(u32::MAX),
            cluster: shared.bus.cluster().to_owned(),
        });
        link.send(welcome)
            .await
            .map_err(|_| Status::internal("link closed during Hello"))?;
        // The link's tasks run in this span, so their log lines name the
        // link and its app server.
        let span = tracing::info_span!("link", link = link.id, server = %link.server_id);
        if !shared.bus.cluster().is_empty() {
            let status = report_node_status(shared.clone(), link.clone());
            tokio::spawn(tracing::Instrument::instrument(status, span.clone()));
        }
        shared.links.add(link.clone());
        count_links(shared, &link, 1);
        span.in_scope(|| tracing::info!(hubs = ?link.hubs, "app server linked"));

        let rest: Vec<_> = messages.collect();
        let reader = read_link(shared.clone(), link.clone(), rest, inbound);
        tokio::spawn(tracing::Instrument::instrument(reader, span));
        Ok(Response::new(outbound(link, rx)))
    }
}

/// Tells the app server whenever this node's standing in its cluster
/// changes, starting with `ready: false` right after `Welcome` when the node
/// is cut off from the bus at that moment. Ends with the link.
async fn report_node_status(shared: Arc<Shared>, link: Arc<Link>) {
    let mut readiness = shared.bus.readiness();
    let mut told = true; // Welcome implies ready
    loop {
        let ready = readiness.borrow_and_update().ready;
        if ready != told {
            let status = Kind::NodeStatus(pb::NodeStatus { ready });
            if link.send(status).await.is_err() {
                return;
            }
            told = ready;
        }
        tokio::select! {
            changed = readiness.changed() => if changed.is_err() { return },
            _ = link.tx.closed() => return,
        }
    }
}

/// The proxy-to-app-server half: batches queued messages into frames until
/// the link dies.
fn outbound(link: Arc<Link>, rx: mpsc::Receiver<ProxyMessage>) -> LinkStream {
    Box::pin(futures_util::stream::unfold(
        (link, rx),
        |(link, mut rx)| async move {
            let first = tokio::select! {
                biased;
                _ = link.gone.notified() => return None,
                m = rx.recv() => m?,
            };
            let mut messages = vec![first];
            while messages.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => messages.push(m),
                    Err(_) => break,
                }
            }
            Some((Ok(ProxyFrame { messages }), (link, rx)))
        },
    ))
}

/// The app-server-to-proxy half: dispatches every message, then tears the
/// link down when the stream ends.
async fn read_link(
    shared: Arc<Shared>,
    link: Arc<Link>,
    first: Vec<pb::ServerMessage>,
    mut inbound: Streaming<ServerFrame>,
) {
    for m in first {
        dispatch::handle(&shared, &link, m).await;
    }
    let outcome = loop {
        match inbound.message().await {
            Ok(Some(frame)) => {
                for m in frame.messages {
                    dispatch::handle(&shared, &link, m).await;
                    // Let the connections' writers drain what this message
                    // queued before the next one is fanned out: a batch of
                    // sends must not overflow outboxes of clients that read
                    // at full speed.
                    tokio::task::yield_now().await;
                }
            }
            Ok(None) => break "closed by the app server".to_owned(),
            Err(status) => break format!("stream error: {}", status.message()),
        }
        if link.is_dead() {
            break "closed by the proxy".to_owned();
        }
    };
    tracing::info!(%outcome, "app server link ended");
    teardown(&shared, &link).await;
}

/// Moves every connection of a dead link to another link serving its hub,
/// or closes it with `allowReconnect` when none is left.
async fn teardown(shared: &Shared, link: &Arc<Link>) {
    link.kill();
    shared.links.remove(link);
    count_links(shared, link, -1);
    const DETAIL: &str = "The app server handling this connection went away.";
    for hub in &link.hubs {
        for handle in shared.router.hub_connections(hub) {
            if !handle.link().is_some_and(|l| Arc::ptr_eq(&l, link)) {
                continue;
            }
            let next = loop {
                let Some(candidate) = shared.links.pick(hub) else {
                    break None;
                };
                candidate.add_load();
                if candidate
                    .send(connection_opened(&handle, true))
                    .await
                    .is_ok()
                {
                    break Some(candidate);
                }
                candidate.remove_load();
            };
            let moved = next.is_some();
            handle.fail_pending_and_move(next, DETAIL);
            if moved {
                tracing::debug!(connection = %handle.id, "connection migrated to another app server");
            } else {
                handle.outbox.close(Close::new(
                    CloseReason::NoAppServer,
                    Some(format!(
                        "Connection closed with an error. No app server is serving hub '{hub}'."
                    )),
                    true,
                ));
            }
        }
    }
}

fn count_links(shared: &Shared, link: &Link, delta: i64) {
    for hub in &link.hubs {
        let labels = HubLabels {
            hub: hub.to_string(),
        };
        shared
            .metrics
            .app_server_links
            .get_or_create(&labels)
            .inc_by(delta);
    }
}

/// Ends every link (at shutdown, after clients were closed): each app
/// server sees its stream end.
pub fn close_all(shared: &Shared) {
    for link in shared.links.all() {
        link.kill();
    }
}

/// Serves `Upstream.Link` until `stopped` turns true: over TLS when `tls`
/// is given (HTTP/2 offered by ALPN; app servers must present a client
/// certificate when it names a client CA), plain HTTP/2 otherwise.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<Reloading>>,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let handshake_timeout = shared.config.handshake_timeout;
    let metrics = shared.metrics.clone();
    let service = pb::upstream_server::UpstreamServer::new(Service { shared })
        .max_decoding_message_size(16 * 1024 * 1024);
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(15)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(service);
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let result = match tls {
        None => {
            // tonic's own `tcp_nodelay` covers only sockets it accepts itself.
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener)
                .map(|tcp| tcp.inspect(crate::no_delay));
            server
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        Some(tls) => {
            let listener =
                TlsListener::new(listener, tls, handshake_timeout, Port::Upstream, metrics);
            server
                .serve_with_incoming_shutdown(listener.into_stream(), shutdown)
                .await
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "upstream server failed");
    }
}
