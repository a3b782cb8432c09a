//! Connections by connection token: what negotiate creates and transport
//! requests claim, so later POSTs, polls and DELETEs find their connection.
//!
//! An entry is pending (negotiated, no transport yet) until a transport
//! claims it, active while its task runs, and ended for a short while after
//! a long-polling connection finished (so a late poll learns it with 204).
//! Pending and ended entries expire; active ones leave when their task ends.
//! A WebSocket connection with stateful reconnect stays active between its
//! sockets, and a reconnect claims it again through its [`Handover`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hashbrown::HashMap;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::handover::Handover;
use crate::Shared;
use crate::auth::Identity;
use crate::config::Transport;
use crate::ids::ConnectionId;

/// What a connection's task receives from the requests that address it.
#[derive(Debug)]
pub enum Input {
    /// Bytes a client POSTed.
    Data(Bytes),
    /// A long poll waiting for its answer.
    Poll(oneshot::Sender<PollAnswer>),
    /// A DELETE ended a long-polling connection.
    Delete,
}

/// How a long poll is answered.
#[derive(Debug, PartialEq, Eq)]
pub enum PollAnswer {
    /// 200 with these bytes (possibly none); `binary` for a binary hub protocol.
    Data { body: Bytes, binary: bool },
    /// 204: the connection ended or a newer poll replaced this one.
    Gone,
}

/// Why a transport request cannot use a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 409: the same streaming transport is already active.
    AlreadyActive,
    /// 400: the connection uses another transport.
    CannotChange,
    /// 405: POSTs to a WebSocket connection.
    PostOnWebSocket,
    /// 400: DELETE on a connection that is not long polling.
    DeleteNotLongPolling,
    /// 413: more bytes posted before the transport started than a message may hold.
    TooLarge,
    /// The connection ended (long polling: 204; others: 404).
    Ended,
}

enum State {
    Pending {
        expires: Instant,
        /// Bytes POSTed before any transport claimed the connection.
        early: Vec<u8>,
        /// Handed to the transport that claims the connection, so that
        /// only the connection holds it from then on.
        identity: Identity,
    },
    Active {
        transport: Transport,
        /// `None` for WebSockets, which read their own socket.
        input: Option<mpsc::Sender<Input>>,
    },
    Ended {
        expires: Instant,
    },
}

/// One negotiated connection.
pub struct Entry {
    pub token: String,
    pub id: ConnectionId,
    /// Lower-case hub name.
    pub hub: String,
    /// Negotiate offered stateful reconnect.
    pub stateful: bool,
    /// Where a stateful reconnect hands its socket over.
    pub handover: Handover,
    state: Mutex<State>,
}

/// What the transport that claims a connection takes over.
#[derive(Debug, PartialEq)]
pub struct Claim {
    /// Bytes POSTed before the transport started.
    pub early: Vec<u8>,
    /// Who negotiated the connection.
    pub identity: Identity,
}

/// How a WebSocket request uses its connection.
#[derive(Debug, PartialEq)]
pub enum WebSocketClaim {
    /// A new connection.
    New(Claim),
    /// A stateful reconnect: offer the socket to [`Entry::handover`].
    Resume,
}

impl Entry {
    /// Hands the connection to a WebSocket, or resumes it when it has
    /// stateful reconnect on (even before its task noticed the old socket
    /// died: the new socket replaces it).
    pub fn claim_websocket(&self) -> Result<WebSocketClaim, Refusal> {
        if self.handover.is_open()
            && matches!(
                &*self.state.lock(),
                State::Active {
                    transport: Transport::WebSockets,
                    ..
                }
            )
        {
            return Ok(WebSocketClaim::Resume);
        }
        self.claim(Transport::WebSockets, None)
            .map(WebSocketClaim::New)
    }

    /// Hands the connection to `transport`, once.
    pub fn claim(
        &self,
        transport: Transport,
        input: Option<mpsc::Sender<Input>>,
    ) -> Result<Claim, Refusal> {
        let mut state = self.state.lock();
        match &mut *state {
            State::Pending {
                early, identity, ..
            } => {
                let claim = Claim {
                    early: std::mem::take(early),
                    identity: std::mem::take(identity),
                };
                *state = State::Active { transport, input };
                Ok(claim)
            }
            State::Active { transport: t, .. } if *t == transport => Err(Refusal::AlreadyActive),
            State::Active { .. } => Err(Refusal::CannotChange),
            State::Ended { .. } => Err(Refusal::Ended),
        }
    }

    /// The input of an active connection using `transport`.
    pub fn input(&self, transport: Transport) -> Result<mpsc::Sender<Input>, Refusal> {
        match &*self.state.lock() {
            State::Active {
                transport: t,
                input: Some(input),
            } if *t == transport => Ok(input.clone()),
            State::Active { .. } | State::Pending { .. } => Err(Refusal::CannotChange),
            State::Ended { .. } => Err(Refusal::Ended),
        }
    }

    /// Where POSTed bytes go: the active transport's task, or (before any
    /// transport started) a buffer of at most `limit` bytes handed over on claim.
    pub fn post(&self, data: &[u8], limit: usize) -> Result<Option<mpsc::Sender<Input>>, Refusal> {
        match &mut *self.state.lock() {
            State::Pending { early, .. } => {
                if early.len() + data.len() > limit {
                    return Err(Refusal::TooLarge);
                }
                early.extend_from_slice(data);
                Ok(None)
            }
            State::Active {
                transport: Transport::WebSockets,
                ..
            } => Err(Refusal::PostOnWebSocket),
            State::Active { input, .. } => Ok(input.clone()),
            State::Ended { .. } => Err(Refusal::Ended),
        }
    }

    /// The long-polling task's input, for a DELETE.
    pub fn delete(&self) -> Result<Option<mpsc::Sender<Input>>, Refusal> {
        match &*self.state.lock() {
            State::Active {
                transport: Transport::LongPolling,
                input,
            } => Ok(input.clone()),
            State::Ended { .. } => Ok(None),
            _ => Err(Refusal::DeleteNotLongPolling),
        }
    }
}

/// Takes a claimed connection out of the table when its transport is done,
/// however that happens (including an upgrade that never completed).
pub struct Release {
    shared: Arc<Shared>,
    token: String,
    /// Long polling keeps an ended entry this long, for late polls.
    linger: Option<Duration>,
}

impl Release {
    pub fn new(shared: Arc<Shared>, token: String, linger: Option<Duration>) -> Self {
        Self {
            shared,
            token,
            linger,
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        match self.linger {
            None => self.shared.negotiated.remove(&self.token),
            Some(linger) => self
                .shared
                .negotiated
                .end(&self.token, Instant::now() + linger),
        }
    }
}

/// See the module docs.
#[derive(Default)]
pub struct Table {
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

impl Table {
    /// Records a negotiated connection under `token` until `expires`.
    /// `stateful` when negotiate offered stateful reconnect.
    pub fn insert(
        &self,
        token: String,
        id: ConnectionId,
        hub: String,
        identity: Identity,
        expires: Instant,
        stateful: bool,
    ) {
        let entry = Entry {
            token: token.clone(),
            id,
            hub,
            stateful,
            handover: Handover::default(),
            state: Mutex::new(State::Pending {
                expires,
                early: Vec::new(),
                identity,
            }),
        };
        self.entries.lock().insert(token, Arc::new(entry));
    }

    /// The connection for `token`, unless it expired unclaimed.
    pub fn get(&self, token: &str) -> Option<Arc<Entry>> {
        let entry = self.entries.lock().get(token).cloned()?;
        let live = match &*entry.state.lock() {
            State::Pending { expires, .. } => *expires > Instant::now(),
            _ => true,
        };
        live.then_some(entry)
    }

    /// Removes a connection whose task ended.
    pub fn remove(&self, token: &str) {
        self.entries.lock().remove(token);
    }

    /// Marks a connection ended; it answers late polls until `expires`.
    pub fn end(&self, token: &str, expires: Instant) {
        if let Some(entry) = self.entries.lock().get(token) {
            *entry.state.lock() = State::Ended { expires };
        }
    }

    /// Drops pending and ended entries past their time.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.entries.lock().retain(|_, e| match &*e.state.lock() {
            State::Pending { expires, .. } | State::Ended { expires } => *expires > now,
            State::Active { .. } => true,
        });
    }

    /// Entries currently held (any state).
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            user_id: Some("alice".into()),
            claims: Vec::new(),
        }
    }

    fn table() -> (Table, Arc<Entry>) {
        let t = Table::default();
        let expires = Instant::now() + Duration::from_secs(60);
        t.insert(
            "tok".into(),
            ConnectionId::random(&crate::ids::NodeId::random()),
            "chat".into(),
            alice(),
            expires,
            true,
        );
        let e = t.get("tok").unwrap();
        (t, e)
    }

    #[test]
    fn early_posts_are_handed_to_the_claiming_transport() {
        let (_t, e) = table();
        assert!(e.post(b"ab", 4).unwrap().is_none());
        assert_eq!(e.post(b"cde", 4).unwrap_err(), Refusal::TooLarge);
        let (tx, _rx) = mpsc::channel(1);
        assert_eq!(
            e.claim(Transport::LongPolling, Some(tx)).unwrap().early,
            b"ab"
        );
        assert!(e.post(b"x", 4).unwrap().is_some());
        assert!(e.delete().unwrap().is_some());
    }

    #[test]
    fn state_conflicts() {
        let (_t, e) = table();
        assert_eq!(e.delete().unwrap_err(), Refusal::DeleteNotLongPolling);
        e.claim(Transport::WebSockets, None).unwrap();
        assert_eq!(
            e.claim(Transport::WebSockets, None).unwrap_err(),
            Refusal::AlreadyActive
        );
        assert_eq!(
            e.claim(Transport::ServerSentEvents, None).unwrap_err(),
            Refusal::CannotChange
        );
        assert_eq!(e.post(b"x", 4).unwrap_err(), Refusal::PostOnWebSocket);
        assert_eq!(e.delete().unwrap_err(), Refusal::DeleteNotLongPolling);
    }

    #[test]
    fn websocket_reconnects_resume_only_once_stateful_reconnect_is_on() {
        let (_t, e) = table();
        let claim = Claim {
            early: Vec::new(),
            identity: alice(),
        };
        assert_eq!(e.claim_websocket(), Ok(WebSocketClaim::New(claim)));
        assert_eq!(e.claim_websocket(), Err(Refusal::AlreadyActive));
        e.handover.open();
        assert_eq!(e.claim_websocket(), Ok(WebSocketClaim::Resume));
        assert_eq!(
            e.claim(Transport::ServerSentEvents, None).unwrap_err(),
            Refusal::CannotChange
        );
    }

    #[tokio::test]
    async fn unclaimed_and_ended_entries_expire() {
        let (t, _e) = table();
        t.insert(
            "b".into(),
            ConnectionId::random(&crate::ids::NodeId::random()),
            "chat".into(),
            Identity::default(),
            Instant::now() + Duration::from_millis(20),
            false,
        );
        t.end("tok", Instant::now() + Duration::from_millis(20));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(t.get("b").is_none());
        t.sweep();
        assert!(t.is_empty());
    }
}
