//! Client-to-server (upload) streams: the feed the dispatcher pushes the
//! client's items into, and the [`UploadStream`] a hub method reads them from.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use switchboard_proto::Payload;
use tokio::sync::mpsc;

use super::encoding::decode;

/// Items of one upload stream that may wait unread. The link reader never
/// waits for a slow method: past this the stream fails with
/// [`UploadError::Overflow`] instead of growing memory.
pub const MAX_UNREAD_UPLOAD_ITEMS: usize = 1024;

/// Why an upload stream ended other than normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The client completed the stream with this error.
    #[error("the client ended the stream with an error: {0}")]
    Client(String),
    /// An item could not be decoded as the stream's item type.
    #[error("a stream item could not be decoded: {0}")]
    Decode(String),
    /// The method read too slowly: more than
    /// [`MAX_UNREAD_UPLOAD_ITEMS`] items were waiting.
    #[error("more than {MAX_UNREAD_UPLOAD_ITEMS} stream items were waiting to be read")]
    Overflow,
    /// The connection ended before the client completed the stream.
    #[error("the connection ended before the stream completed")]
    Closed,
}

/// How the producing side ended, recorded before the channel closes so the
/// reader can tell a normal end from a failure.
#[derive(Debug)]
enum End {
    Completed,
    Failed(String),
    Overflow,
}

#[derive(Debug, Default)]
struct Shared {
    end: Mutex<Option<End>>,
}

/// The dispatcher's end of one upload stream.
#[derive(Debug)]
pub(crate) struct Feed {
    sender: mpsc::Sender<Payload>,
    shared: Arc<Shared>,
}

impl Feed {
    /// Queues an item without waiting. `false` means the stream is over for
    /// good (overflowed, or the method dropped it): forget this feed.
    pub(crate) fn item(&self, payload: Payload) -> bool {
        match self.sender.try_send(payload) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                *self.shared.end.lock() = Some(End::Overflow);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// The client completed the stream; an empty `error` is a normal end.
    pub(crate) fn complete(self, error: String) {
        let end = if error.is_empty() {
            End::Completed
        } else {
            End::Failed(error)
        };
        let mut slot = self.shared.end.lock();
        if slot.is_none() {
            *slot = Some(end);
        }
        // Dropping `self.sender` after this lets the reader see the end.
    }
}

/// The receiving end of one upload stream, before it is typed.
#[derive(Debug)]
pub struct Upload {
    receiver: mpsc::Receiver<Payload>,
    shared: Arc<Shared>,
}

/// A fresh upload stream.
pub(crate) fn channel() -> (Feed, Upload) {
    let (sender, receiver) = mpsc::channel(MAX_UNREAD_UPLOAD_ITEMS);
    let shared = Arc::new(Shared::default());
    (
        Feed {
            sender,
            shared: shared.clone(),
        },
        Upload { receiver, shared },
    )
}

/// The upload streams of one invocation, in the order the client listed
/// them; stream parameters take them in order.
#[derive(Debug, Default)]
pub struct Uploads(VecDeque<Upload>);

impl Uploads {
    pub(crate) fn new(uploads: Vec<Upload>) -> Self {
        Self(uploads.into())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn take(&mut self) -> Option<Upload> {
        self.0.pop_front()
    }
}

/// A stream the client uploads while the method runs: a method parameter
/// (inside the arguments tuple) fed by the client's `Subject` or
/// `ChannelWriter`. Yields each item decoded as `T`, in order; ends when
/// the client completes the stream, or with one `Err` when it fails.
///
/// ```
/// use futures_util::StreamExt;
/// use switchboard_sdk::{Context, Hub, HubError, UploadStream};
///
/// let hub = Hub::builder("upload")
///     .method("Concat", |_ctx: Context, (mut parts,): (UploadStream<String>,)| async move {
///         let mut text = String::new();
///         while let Some(part) = parts.next().await {
///             text.push_str(&part?);
///         }
///         Ok::<_, HubError>(text)
///     })
///     .build();
/// # let _ = hub;
/// ```
#[derive(Debug)]
pub struct UploadStream<T> {
    upload: Upload,
    finished: bool,
    item: PhantomData<fn() -> T>,
}

impl<T> UploadStream<T> {
    pub(crate) fn new(upload: Upload) -> Self {
        Self {
            upload,
            finished: false,
            item: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Stream for UploadStream<T> {
    type Item = Result<T, UploadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let polled = self.upload.receiver.poll_recv(cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(payload)) => match decode::<T>(&payload) {
                Ok(item) => Poll::Ready(Some(Ok(item))),
                Err(err) => {
                    self.finished = true;
                    Poll::Ready(Some(Err(UploadError::Decode(err))))
                }
            },
            Poll::Ready(None) => {
                self.finished = true;
                let end = self.upload.shared.end.lock().take();
                Poll::Ready(match end {
                    Some(End::Completed) => None,
                    Some(End::Failed(error)) => Some(Err(UploadError::Client(error))),
                    Some(End::Overflow) => Some(Err(UploadError::Overflow)),
                    None => Some(Err(UploadError::Closed)),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn items_then_normal_or_failed_end() {
        let (feed, upload) = channel();
        let mut stream = UploadStream::<u32>::new(upload);
        assert!(feed.item(Payload::json("1")));
        assert!(feed.item(Payload::json("2")));
        feed.complete(String::new());
        assert_eq!(stream.next().await, Some(Ok(1)));
        assert_eq!(stream.next().await, Some(Ok(2)));
        assert_eq!(stream.next().await, None);
        assert_eq!(stream.next().await, None);

        let (feed, upload) = channel();
        let mut stream = UploadStream::<u32>::new(upload);
        feed.complete("client broke".into());
        assert_eq!(
            stream.next().await,
            Some(Err(UploadError::Client("client broke".into())))
        );
        assert_eq!(stream.next().await, None);
    }

    #[tokio::test]
    async fn undecodable_items_overflow_and_vanished_feeds_are_errors() {
        let (feed, upload) = channel();
        let mut stream = UploadStream::<u32>::new(upload);
        assert!(feed.item(Payload::json("\"nope\"")));
        assert!(matches!(
            stream.next().await,
            Some(Err(UploadError::Decode(_)))
        ));
        assert_eq!(stream.next().await, None);

        let (feed, upload) = channel();
        let mut stream = UploadStream::<u32>::new(upload);
        for _ in 0..MAX_UNREAD_UPLOAD_ITEMS {
            assert!(feed.item(Payload::json("0")));
        }
        assert!(!feed.item(Payload::json("0")));
        drop(feed);
        let items: Vec<_> = (&mut stream).collect().await;
        assert_eq!(items.len(), MAX_UNREAD_UPLOAD_ITEMS + 1);
        assert_eq!(items.last(), Some(&Err(UploadError::Overflow)));

        let (feed, upload) = channel();
        drop(feed);
        let mut stream = UploadStream::<u32>::new(upload);
        assert_eq!(stream.next().await, Some(Err(UploadError::Closed)));
    }
}
