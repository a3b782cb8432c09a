//! Hub definitions: named methods with typed arguments and results, plus
//! connect and disconnect handlers, and the mapping of failures to the error
//! texts SignalR clients expect.

mod arguments;
mod outcome;
pub(crate) mod texts;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use switchboard_proto::{Encoding, Payload};

pub use arguments::Arguments;
use outcome::Outcome;
pub use outcome::{HubError, MethodResult};

use crate::context::{Context, Disconnect};
use arguments::{BindError, bind_json};
use outcome::sealed::Sealed as _;

type MethodFn =
    Arc<dyn Fn(Context, &Payload) -> Result<BoxFuture<'static, Outcome>, BindError> + Send + Sync>;
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

struct HubInner {
    name: String,
    /// Keyed by lower-cased method name: clients match case-insensitively.
    methods: HashMap<String, MethodFn>,
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

    /// Runs `target` for one invocation and maps the outcome to what the
    /// client receives. Never panics: a panicking method is a failure.
    pub(crate) async fn invoke(
        &self,
        ctx: Context,
        target: &str,
        args: &Payload,
        streaming: bool,
    ) -> Completion {
        let Some(method) = self.inner.methods.get(&target.to_lowercase()) else {
            return Completion::Error(texts::method_does_not_exist(target));
        };
        if streaming {
            return Completion::Error(texts::streaming_mismatch(target));
        }
        let future = match method(ctx, args) {
            Ok(future) => future,
            Err(BindError::Count { provided, expected }) => {
                return Completion::Error(texts::wrong_count(target, provided, expected));
            }
            Err(BindError::Type) => return Completion::Error(texts::binding_failed(target)),
        };
        match AssertUnwindSafe(future).catch_unwind().await {
            Ok(Outcome::Value(json)) => Completion::Value(json),
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

/// What the client receives for an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Completion {
    /// A JSON result (possibly `null`).
    Value(bytes::Bytes),
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
    pub fn method<F, A, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        A: Arguments,
        Fut: Future + Send + 'static,
        Fut::Output: MethodResult,
    {
        let name = name.into();
        let key = name.to_lowercase();
        let erased: MethodFn = Arc::new(move |ctx: Context, payload: &Payload| {
            let args = bind::<A>(payload)?;
            let future = handler(ctx, args);
            Ok(async move { future.await.into_outcome() }.boxed())
        });
        let previous = self.inner.methods.insert(key, erased);
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
            async move { future.await.into_outcome() }.boxed()
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
            async move { future.await.into_outcome() }.boxed()
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

fn bind<A: Arguments>(payload: &Payload) -> Result<A, BindError> {
    if payload.encoding() == Encoding::Messagepack {
        // The proxy hands app servers JSON; anything else cannot be bound.
        return Err(BindError::Type);
    }
    bind_json(&payload.data)
}
