//! Where a reconnecting WebSocket is handed to the task that still holds its
//! stateful-reconnect connection.
//!
//! The reconnect request upgrades on its own and offers the socket here; the
//! connection's task takes it, whether it is waiting after a drop or still
//! serving a socket the client already gave up on.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::websocket::ClientSocket;

/// See the module docs.
#[derive(Default)]
pub struct Handover {
    /// Set once the connection's handshake turned stateful reconnect on.
    open: AtomicBool,
    /// Boxed: every connection carries a `Handover`, few ever hold a socket.
    socket: Mutex<Option<Box<ClientSocket>>>,
    offered: Notify,
}

impl Handover {
    /// The connection can now be resumed by a reconnect.
    pub fn open(&self) {
        self.open.store(true, Ordering::Release);
    }

    /// Whether a reconnect may resume the connection.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Hands over a reconnected socket; a socket offered earlier and not yet
    /// taken is replaced (and so closed).
    pub fn offer(&self, socket: Box<ClientSocket>) {
        *self.socket.lock() = Some(socket);
        self.offered.notify_one();
    }

    /// Waits for a reconnected socket. Cancel-safe.
    pub async fn next(&self) -> Box<ClientSocket> {
        loop {
            if let Some(socket) = self.socket.lock().take() {
                return socket;
            }
            self.offered.notified().await;
        }
    }
}
