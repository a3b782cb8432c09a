//! The app server's link to the proxy: keeps one `Upstream.Link` stream up,
//! reconnecting with backoff when it drops, and reports readiness.

mod backoff;
mod outbox;
mod session;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::connection_string::ConnectionString;
use crate::dispatch::Dispatcher;
use backoff::Backoff;
pub(crate) use outbox::Outbox;
use session::Ended;

/// Where the link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkStatus {
    /// Dialling, waiting for `Welcome`, or waiting to retry.
    Connecting,
    /// `Welcome` received; sends go through.
    Ready,
    /// Shut down for good.
    Stopped,
}

/// Tunables of the link; see `ServerBuilder` for what each means.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub queue_capacity: usize,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// Everything the link task needs.
pub(crate) struct Link {
    pub conn: ConnectionString,
    pub server_id: String,
    pub settings: Settings,
    pub dispatcher: Arc<Dispatcher>,
    pub outbox: Arc<Outbox>,
    pub status: watch::Sender<LinkStatus>,
}

impl Link {
    /// Keeps a session up until `shutdown` turns true or its sender is
    /// dropped.
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(self.settings.reconnect_min, self.settings.reconnect_max);
        loop {
            self.status.send_replace(LinkStatus::Connecting);
            let ended = session::run(&self, &mut shutdown).await;
            self.outbox.detach();
            self.dispatcher.link_lost();
            match ended {
                Ended::Shutdown => {
                    // Disconnect handlers of the connections just ended.
                    self.dispatcher
                        .wait_idle(self.settings.shutdown_grace)
                        .await;
                    break;
                }
                Ended::Lost(error) => {
                    tracing::warn!(%error, "link to the proxy lost; reconnecting");
                    backoff.reset();
                }
                Ended::Failed(error) => {
                    tracing::warn!(%error, endpoint = self.conn.server_endpoint(), "cannot link to the proxy");
                }
            }
            self.status.send_replace(LinkStatus::Connecting);
            let delay = backoff.next_delay();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(&mut shutdown) => break,
            }
        }
        self.status.send_replace(LinkStatus::Stopped);
        tracing::info!("link to the proxy shut down");
    }
}

/// Resolves once shutdown is requested (or nobody can request it anymore).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
