//! A connection's live streams: cancel handles of its server-to-client
//! streams, feeds of its upload streams, and the task that pumps a stream's
//! items to the proxy through the connection's link.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use futures_util::{FutureExt, StreamExt};
use switchboard_proto::server_message::Kind;
use switchboard_proto::{ClientInvocation, Payload, StreamItem};
use tokio::sync::oneshot;

use crate::hub::upload::Feed;
use crate::hub::{Completion, ItemStream, Outcome, texts};
use crate::link::Peer;
use std::sync::Arc;

/// Streams in flight on one connection.
#[derive(Default)]
pub(super) struct Live {
    /// Server-to-client streams by invocation id; sending (or dropping)
    /// the handle stops the stream.
    pub(super) streams: HashMap<String, oneshot::Sender<()>>,
    /// Upload streams by stream id.
    pub(super) uploads: HashMap<String, Feed>,
}

impl Live {
    pub(super) fn upload_item(&mut self, stream_id: &str, payload: Payload) {
        match self.uploads.get(stream_id) {
            Some(feed) => {
                if !feed.item(payload) {
                    self.uploads.remove(stream_id);
                }
            }
            None => tracing::debug!(%stream_id, "item for an unknown upload stream"),
        }
    }

    pub(super) fn upload_complete(&mut self, stream_id: &str, error: String) {
        match self.uploads.remove(stream_id) {
            Some(feed) => feed.complete(error),
            None => tracing::debug!(%stream_id, "completion of an unknown upload stream"),
        }
    }

    pub(super) fn cancel(&mut self, invocation_id: &str) {
        match self.streams.remove(invocation_id) {
            // The stream may have ended meanwhile; nothing to do then.
            Some(cancel) => drop(cancel.send(())),
            None => tracing::debug!(%invocation_id, "cancel for a stream that is not running"),
        }
    }

    /// Drops what an invocation registered once it finished: its cancel
    /// handle and any upload it did not see completed.
    pub(super) fn forget(&mut self, invocation: &ClientInvocation) {
        if invocation.streaming {
            self.streams.remove(&invocation.invocation_id);
        }
        for stream_id in &invocation.stream_ids {
            self.uploads.remove(stream_id);
        }
    }

    /// The connection is gone: every stream stops and every upload ends
    /// unfinished.
    pub(super) fn end(&mut self) {
        self.streams.clear();
        self.uploads.clear();
    }
}

/// Sends a stream's items until it ends, fails, or is cancelled, and says
/// how the client's completion reads. The stream is dropped before this
/// returns, so a cancelled producer has stopped when the completion goes out.
pub(super) async fn pump(
    link: impl Fn() -> Arc<Peer>,
    invocation: &ClientInvocation,
    mut items: ItemStream,
    cancel: Option<oneshot::Receiver<()>>,
) -> Completion {
    let cancelled = async {
        match cancel {
            // A dropped handle means the connection went away: stop too.
            Some(cancel) => drop(cancel.await),
            None => std::future::pending().await,
        }
    };
    tokio::pin!(cancelled);
    let target = &invocation.target;
    let completion = loop {
        let next = tokio::select! {
            biased;
            () = &mut cancelled => break Completion::Void,
            next = AssertUnwindSafe(items.next()).catch_unwind() => next,
        };
        match next {
            Ok(Some(Outcome::Value(item))) => {
                let message = Kind::StreamItem(StreamItem {
                    connection: invocation.connection.clone(),
                    invocation_id: invocation.invocation_id.clone(),
                    item: Some(item),
                });
                // Asked per item: failover may move the connection to another link.
                if let Err(err) = link().outbox.send(message).await {
                    tracing::debug!(method = %target, error = %err, "stream item not delivered; stopping the stream");
                    break Completion::Void;
                }
            }
            // Items are never void; a `()` item was encoded as null.
            Ok(Some(Outcome::Void)) => {}
            Ok(Some(Outcome::HubError(message))) => {
                break Completion::Error(texts::streaming_hub_error(&message));
            }
            Ok(Some(Outcome::Failed(detail))) => {
                tracing::warn!(method = %target, error = %detail, "stream failed");
                break Completion::Error(texts::streaming_failed());
            }
            Ok(None) => break Completion::Void,
            Err(_) => {
                tracing::error!(method = %target, "stream panicked");
                break Completion::Error(texts::streaming_failed());
            }
        }
    };
    drop(items);
    completion
}
