//! The shared face of a live connection: what the router, the upstream
//! links and the connection's own task all reach for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::outbox::Outbox;
use crate::ids::ConnectionId;
use crate::router::frames;
use crate::upstream::Link;

/// Hub protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Json,
    MessagePack,
}

impl Protocol {
    /// The name clients use in their handshake.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::MessagePack => "messagepack",
        }
    }

    /// The payload encoding app servers see for this protocol.
    pub fn encoding(self) -> switchboard_proto::Encoding {
        match self {
            Self::Json => switchboard_proto::Encoding::Json,
            Self::MessagePack => switchboard_proto::Encoding::Messagepack,
        }
    }
}

/// An invocation sent to the app server and not yet answered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    invocation_id: String,
    target: String,
    started: Instant,
}

/// A client result the app server is waiting for (the proxy invoked a client
/// method with an id and awaits the client's Completion).
struct ClientCall {
    invocation_id: String,
    request_id: u64,
    /// The link that asked, which gets the answer.
    link: Arc<Link>,
}

struct Inner {
    link: Option<Arc<Link>>,
    pending: Vec<Pending>,
    calls: Vec<ClientCall>,
    next_call: u32,
}

/// What the app server is told about a connection when it is assigned one.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Claims from the access token other than the registered ones (JSON text values).
    pub claims: Vec<(String, String)>,
    /// "WebSockets", "ServerSentEvents" or "LongPolling".
    pub transport: &'static str,
    pub remote_address: String,
    /// The connect request's query string, without tokens.
    pub query: String,
    /// Selected request headers, lower-case names.
    pub headers: Vec<(String, String)>,
}

/// See the module docs.
pub struct Handle {
    pub id: ConnectionId,
    /// Lower-case hub name.
    pub hub: Arc<str>,
    pub user: Option<Arc<str>>,
    pub protocol: Protocol,
    pub outbox: Outbox,
    pub meta: Meta,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("id", &self.id)
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl Handle {
    pub fn new(
        id: ConnectionId,
        hub: Arc<str>,
        user: Option<Arc<str>>,
        protocol: Protocol,
        outbox_limit: usize,
        meta: Meta,
    ) -> Self {
        Self {
            id,
            hub,
            user,
            protocol,
            outbox: Outbox::new(outbox_limit),
            meta,
            inner: Mutex::new(Inner {
                link: None,
                pending: Vec::new(),
                calls: Vec::new(),
                next_call: 0,
            }),
        }
    }

    /// The app-server link currently serving this connection.
    pub fn link(&self) -> Option<Arc<Link>> {
        self.inner.lock().link.clone()
    }

    /// Assigns a link; returns the previous one.
    pub fn set_link(&self, link: Option<Arc<Link>>) -> Option<Arc<Link>> {
        std::mem::replace(&mut self.inner.lock().link, link)
    }

    /// Records an invocation awaiting its result and returns the link to send
    /// it on, atomically, so a concurrent link failover either sees the
    /// invocation (and fails it) or hands back the new link.
    pub fn begin_invocation(&self, invocation_id: Option<&str>, target: &str) -> Option<Arc<Link>> {
        let mut inner = self.inner.lock();
        if let Some(id) = invocation_id {
            inner.pending.push(Pending {
                invocation_id: id.to_owned(),
                target: target.to_owned(),
                started: Instant::now(),
            });
        }
        inner.link.clone()
    }

    /// Forgets a pending invocation and says how long it took; `None` if it
    /// was not pending (already answered or failed).
    pub fn finish_invocation(&self, invocation_id: &str) -> Option<Duration> {
        let mut inner = self.inner.lock();
        let i = inner
            .pending
            .iter()
            .position(|p| p.invocation_id == invocation_id)?;
        Some(inner.pending.swap_remove(i).started.elapsed())
    }

    /// Whether `invocation_id` is awaiting a result (streams stay pending
    /// until their completion).
    pub fn is_pending(&self, invocation_id: &str) -> bool {
        self.inner
            .lock()
            .pending
            .iter()
            .any(|p| p.invocation_id == invocation_id)
    }

    /// Fails `invocation_id` with the error text the reference server uses
    /// when a method fails, if it is still pending.
    pub fn fail_invocation(&self, invocation_id: &str, detail: &str) {
        let target = {
            let mut inner = self.inner.lock();
            let Some(i) = inner
                .pending
                .iter()
                .position(|p| p.invocation_id == invocation_id)
            else {
                return;
            };
            inner.pending.swap_remove(i).target
        };
        self.push_failure(invocation_id, &target, detail);
    }

    /// Fails every pending invocation (their app server went away) and moves
    /// the connection to `link`.
    pub fn fail_pending_and_move(&self, link: Option<Arc<Link>>, detail: &str) {
        let pending = {
            let mut inner = self.inner.lock();
            inner.link = link;
            std::mem::take(&mut inner.pending)
        };
        for p in pending {
            self.push_failure(&p.invocation_id, &p.target, detail);
        }
    }

    fn push_failure(&self, invocation_id: &str, target: &str, detail: &str) {
        let text =
            format!("An unexpected error occurred invoking '{target}' on the server. {detail}");
        // A full outbox already closes the connection; nothing more to do.
        let frame = frames::completion_error(self.protocol, invocation_id, &text);
        let _ = self.outbox.push(frame);
    }

    /// Records a client result awaited by `link` under `request_id`; returns the
    /// invocation id to send to the client.
    pub fn begin_client_call(&self, request_id: u64, link: Arc<Link>) -> String {
        let mut inner = self.inner.lock();
        inner.next_call = inner.next_call.wrapping_add(1);
        // A prefix no official client uses for its own invocation ids.
        let invocation_id = format!("sb{}", inner.next_call);
        inner.calls.push(ClientCall {
            invocation_id: invocation_id.clone(),
            request_id,
            link,
        });
        invocation_id
    }

    /// Ends a client result: the request id and the link to answer, if
    /// `invocation_id` was awaited.
    pub fn finish_client_call(&self, invocation_id: &str) -> Option<(u64, Arc<Link>)> {
        let mut inner = self.inner.lock();
        let i = inner
            .calls
            .iter()
            .position(|c| c.invocation_id == invocation_id)?;
        let call = inner.calls.swap_remove(i);
        Some((call.request_id, call.link))
    }

    /// Ends every awaited client result (the connection is closing).
    pub fn take_client_calls(&self) -> Vec<(u64, Arc<Link>)> {
        let calls = std::mem::take(&mut self.inner.lock().calls);
        calls.into_iter().map(|c| (c.request_id, c.link)).collect()
    }
}
