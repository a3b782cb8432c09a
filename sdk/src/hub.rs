//! Hub definitions: named methods with typed arguments and results, plus
//! connect and disconnect handlers, and the mapping of failures to the error
//! texts SignalR clients expect.

mod arguments;
pub(crate) mod encoding;
mod outcome;
pub(crate) mod texts;
pub(crate) mod upload;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, Stream, StreamExt};
use serde::Serialize;
use switchboard_proto::{Encoding, Payload};

pub use arguments::Arguments;
pub(crate) use outcome::Outcome;
pub use outcome::{HubError, MethodResult};
pub use upload::{MAX_UNREAD_UPLOAD_ITEMS, UploadError, UploadStream};

use crate::context::{Context, Disconnect};
use arguments::{BindError, bind_json, bind_msgpack};
use outcome::sealed::Sealed as _;
use outcome::{error_outcome, value_outcome};
use upload::Uploads;

/// Items of a server-to-client stream, each already encoded (or a failure).
pub(crate) type ItemStream = BoxStream<'static, Outcome>;

type UnaryFn = Arc<
    dyn Fn(Context, &Payload, Uploads) -> Result<BoxFuture<'static, Outcome>, BindError>
        + Send
        + Sync,
>;
type StreamFn = Arc<
    dyn Fn(
            Context,
            &Payload,
            Uploads,
        ) -> Result<BoxFuture<'static, Result<ItemStream, Outcome>>, BindError>
        + Send
        + Sync,
>;
type ConnectedFn = Arc<dyn Fn(Context) -> BoxFuture<'static, Outcome> + Send + Sync>;
type DisconnectedFn = Arc<dyn Fn(Context, Disconnect) -> BoxFuture<'static, Outcome> + Send + Sync>;

/// A hub: a name, its methods and its connection handlers.
///
/// Build one with [`Hub::builder`] and pass it to
/// [`ServerBuilder::hub`](crate::ServerBuilder::hub).
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

/// A registered method: how it answers, and how many upload streams it
/// takes.
struct Method {
    kind: MethodKind,
    streams: usize,
}

enum MethodKind {
    Unary(UnaryFn),
    Streaming(StreamFn),
}

struct HubInner {
    name: String,
    /// Keyed by lower-cased method name: clients match case-insensitively.
    methods: HashMap<String, Method>,
    on_connected: Option<ConnectedFn>,
    on_disconnected: Option<DisconnectedFn>,
}

impl Hub {
    /// Starts defining a hub called `name` (matched case-insensitively).
    pub fn builder(name: impl Into<String>) -> HubBuilder {
        HubBuilder {
            inner: HubInner {
                name: name.into(),
                methods: HashMap::new(),
                on_connected: None,
                on_disconnected: None,
            },
        }
    }

    /// The hub's name as given to [`Hub::builder`].
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether a method of that name (any case) exists.
    pub fn has_method(&self, method: &str) -> bool {
        self.inner.methods.contains_key(&method.to_lowercase())
    }

    /// Checks and binds one invocation and hands back what is left to run.
    /// Refusals (unknown method, wrong invocation kind, wrong number of
    /// arguments or streams) come back as [`Started::Refused`].
    pub(crate) fn start(
        &self,
        ctx: Context,
        target: &str,
        args: &Payload,
        uploads: Uploads,
        streaming: bool,
    ) -> Started {
        let Some(method) = self.inner.methods.get(&target.to_lowercase()) else {
            return Started::Refused(texts::method_does_not_exist(target));
        };
        match (&method.kind, streaming) {
            (MethodKind::Unary(_), true) => {
                return Started::Refused(texts::streaming_mismatch(target));
            }
            (MethodKind::Streaming(_), false) => {
                return Started::Refused(texts::non_streaming_invocation(target));
            }
            _ => {}
        }
        if uploads.len() != method.streams {
            return Started::Refused(texts::stream_count(target, uploads.len(), method.streams));
        }
        let bound = match &method.kind {
            MethodKind::Unary(run) => run(ctx, args, uploads).map(|future| {
                let target = target.to_owned();
                Started::Unary(
                        async move {
                            completion(&target, AssertUnwindSafe(future).catch_unwind().await)
                        }
                        .boxed(),
                    )
            }),
            MethodKind::Streaming(run) => run(ctx, args, uploads).map(|future| {
                let target = target.to_owned();
                Started::Stream(
                    async move {
                        match AssertUnwindSafe(future).catch_unwind().await {
                            Ok(Ok(items)) => Ok(items),
                            Ok(Err(outcome)) => Err(completion(&target, Ok(outcome))),
                            Err(panic) => Err(completion(&target, Err(panic))),
                        }
                    }
                    .boxed(),
                )
            }),
        };
        match bound {
            Ok(started) => started,
            Err(BindError::Count { provided, expected }) => {
                Started::Refused(texts::wrong_count(target, provided, expected))
            }
            Err(BindError::Type) => Started::Refused(texts::binding_failed(target)),
        }
    }

    /// Runs the connect handler; `false` when it failed.
    pub(crate) async fn connected(&self, ctx: Context) -> bool {
        let Some(handler) = &self.inner.on_connected else {
            return true;
        };
        let connection = ctx.connection_id().to_owned();
        match AssertUnwindSafe(handler(ctx)).catch_unwind().await {
            Ok(Outcome::Value(_) | Outcome::Void) => true,
            Ok(Outcome::HubError(detail) | Outcome::Failed(detail)) => {
                tracing::warn!(%connection, error = %detail, "on_connected failed");
                false
            }
            Err(_) => {
                tracing::error!(%connection, "on_connected panicked");
                false
            }
        }
    }

    /// Runs the disconnect handler, logging failures.
    pub(crate) async fn disconnected(&self, ctx: Context, disconnect: Disconnect) {
        let Some(handler) = &self.inner.on_disconnected else {
            return;
        };
        let connection = ctx.connection_id().to_owned();
        match AssertUnwindSafe(handler(ctx, disconnect))
            .catch_unwind()
            .await
        {
            Ok(Outcome::Value(_) | Outcome::Void) => {}
            Ok(Outcome::HubError(detail) | Outcome::Failed(detail)) => {
                tracing::warn!(%connection, error = %detail, "on_disconnected failed");
            }
            Err(_) => tracing::error!(%connection, "on_disconnected panicked"),
        }
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut methods: Vec<_> = self.inner.methods.keys().collect();
        methods.sort();
        f.debug_struct("Hub")
            .field("name", &self.inner.name)
            .field("methods", &methods)
            .finish()
    }
}

/// What is left of an invocation once it was checked and bound.
pub(crate) enum Started {
    /// Refused before running; the full error text for the client.
    Refused(String),
    /// A method with one answer.
    Unary(BoxFuture<'static, Completion>),
    /// A streaming method: its future yields the items, or the completion
    /// when it failed before streaming.
    Stream(BoxFuture<'static, Result<ItemStream, Completion>>),
}

/// Maps a method's outcome (or panic) to what the client receives.
fn completion(target: &str, ran: std::thread::Result<Outcome>) -> Completion {
    match ran {
        Ok(Outcome::Value(payload)) => Completion::Value(payload),
        Ok(Outcome::Void) => Completion::Void,
        Ok(Outcome::HubError(message)) => Completion::Error(texts::hub_error(target, &message)),
        Ok(Outcome::Failed(detail)) => {
            tracing::warn!(method = target, error = %detail, "hub method failed");
            Completion::Error(texts::unexpected(target))
        }
        Err(_) => {
            tracing::error!(method = target, "hub method panicked");
            Completion::Error(texts::unexpected(target))
        }
    }
}

/// What the client receives for an invocation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Completion {
    /// A result (possibly `null`) in the caller's encoding.
    Value(Payload),
    /// No result.
    Void,
    /// The full error text for the client.
    Error(String),
}

/// Defines a [`Hub`]; finish with [`HubBuilder::build`].
pub struct HubBuilder {
    inner: HubInner,
}

impl HubBuilder {
    /// Adds a method. `name` is matched case-insensitively; `handler` takes
    /// the invocation [`Context`] and the typed [`Arguments`] and returns a
    /// future of a [`MethodResult`].
    ///
    /// ```
    /// use switchboard_sdk::{Context, Hub, HubError};
    ///
    /// let hub = Hub::builder("math")
    ///     .method("Add", |_ctx: Context, (a, b): (i64, i64)| async move {
    ///         Ok::<_, HubError>(a + b)
    ///     })
    ///     .method("Fail", |_ctx: Context, (): ()| async move {
    ///         Err::<(), _>(HubError::new("nope"))
    ///     })
    ///     .build();
    /// assert!(hub.has_method("add"));
    /// ```
    ///
    /// # Panics
    /// When a method of the same name (ignoring case) was already added.
    pub fn method<F, A, Fut>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        A: Arguments,
        Fut: Future + Send + 'static,
        Fut::Output: MethodResult,
    {
        let erased: UnaryFn = Arc::new(move |ctx: Context, payload: &Payload, uploads| {
            let encoding = ctx.encoding();
            let args = bind::<A>(payload, uploads)?;
            let future = handler(ctx, args);
            Ok(async move { future.await.into_outcome(encoding) }.boxed())
        });
        self.add(name.into(), MethodKind::Unary(erased), A::STREAMS)
    }

    /// Adds a streaming method, which clients call with `stream(...)`. The
    /// handler's future yields the stream of items (or fails before
    /// streaming); each item is `Ok(value)` or an `Err` that ends the stream
    /// with an error, worded as the reference server does.
    ///
    /// When the client cancels (or disconnects) the stream is dropped, so
    /// the producer stops at its next await point; the client then gets a
    /// normal completion. Streaming methods do not hold up the caller's
    /// other invocations once their stream is returned.
    ///
    /// ```
    /// use futures_util::stream;
    /// use switchboard_sdk::{Context, Hub, HubError};
    ///
    /// let hub = Hub::builder("count")
    ///     .stream_method("Count", |_ctx: Context, (n,): (u32,)| async move {
    ///         Ok::<_, HubError>(stream::iter((0..n).map(Ok::<_, HubError>)))
    ///     })
    ///     .build();
    /// assert!(hub.has_method("count"));
    /// ```
    ///
    /// # Panics
    /// When a method of the same name (ignoring case) was already added.
    pub fn stream_method<F, A, Fut, S, E, T, IE>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        A: Arguments,
        Fut: Future<Output = Result<S, E>> + Send + 'static,
        E: Into<HubError> + Send + 'static,
        S: Stream<Item = Result<T, IE>> + Send + 'static,
        T: Serialize + Send + 'static,
        IE: Into<HubError> + Send + 'static,
    {
        let erased: StreamFn = Arc::new(move |ctx: Context, payload: &Payload, uploads| {
            let encoding = ctx.encoding();
            let args = bind::<A>(payload, uploads)?;
            let future = handler(ctx, args);
            Ok(async move {
                match future.await {
                    Ok(items) => Ok(items
                        .map(move |item| match item {
                            Ok(value) => value_outcome(&value, encoding),
                            Err(err) => error_outcome(err.into()),
                        })
                        .boxed()),
                    Err(err) => Err(error_outcome(err.into())),
                }
            }
            .boxed())
        });
        self.add(name.into(), MethodKind::Streaming(erased), A::STREAMS)
    }

    fn add(mut self, name: String, kind: MethodKind, streams: usize) -> Self {
        let previous = self
            .inner
            .methods
            .insert(name.to_lowercase(), Method { kind, streams });
        assert!(
            previous.is_none(),
            "hub '{}' already has a method named '{name}' (names are case-insensitive)",
            self.inner.name
        );
        self
    }

    /// Sets the handler run when a client connects (or is moved here from
    /// another app server; see [`Connection::migrated`](crate::Connection::migrated)).
    /// Invocations from that connection wait until it finished. When it
    /// fails, the connection is closed with an error.
    pub fn on_connected<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: MethodResult,
    {
        self.inner.on_connected = Some(Arc::new(move |ctx| {
            let future = handler(ctx);
            async move { future.await.into_outcome(Encoding::Json) }.boxed()
        }));
        self
    }

    /// Sets the handler run when a connection ended, after its last
    /// invocation finished. It also runs for every connection of a link
    /// that was lost, since the proxy moves those connections elsewhere.
    pub fn on_disconnected<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Context, Disconnect) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: MethodResult,
    {
        self.inner.on_disconnected = Some(Arc::new(move |ctx, disconnect| {
            let future = handler(ctx, disconnect);
            async move { future.await.into_outcome(Encoding::Json) }.boxed()
        }));
        self
    }

    /// Finishes the hub.
    pub fn build(self) -> Hub {
        Hub {
            inner: Arc::new(self.inner),
        }
    }
}

fn bind<A: Arguments>(payload: &Payload, mut uploads: Uploads) -> Result<A, BindError> {
    match payload.encoding() {
        Encoding::Messagepack => bind_msgpack(&payload.data, &mut uploads),
        Encoding::Json | Encoding::Unspecified => bind_json(&payload.data, &mut uploads),
    }
}
