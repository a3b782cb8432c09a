//! Serve SignalR hubs through a Switchboard proxy from an application server.
//!
//! Clients (any official SignalR client) connect to the proxy, which holds
//! their sockets. Your app server links to the proxy over one gRPC stream,
//! declares the hubs it serves, runs hub methods when clients invoke them,
//! and sends to all clients, a connection, a group or a user.
//!
//! With several proxy replicas, the app server links to every one of them:
//! list them in `ServerEndpoint` (comma-separated), add them with
//! [`ServerBuilder::server_endpoint`], or let a DNS name that resolves to
//! all replicas find them (`ServerDiscovery=Dns`,
//! [`ServerBuilder::dns_discovery`]). Each client's invocations arrive on
//! the link of the replica holding it and are answered there; broadcasts,
//! group and user sends go once to each cluster of replicas (see
//! [`Server::links`] and [`HubContext`]).
//!
//! 1. Parse the [`ConnectionString`] (`Endpoint=...;AccessKey=...`).
//! 2. Define each [`Hub`] with typed methods.
//! 3. [`Server::builder`] → [`ServerBuilder::start`]; wait with
//!    [`Server::wait_ready`].
//! 4. Serve `POST /{hub}/negotiate` ([`Server::negotiate_routes`]) so
//!    clients are redirected to the proxy with an access token.
//!
//! ```no_run
//! use switchboard_sdk::{ConnectionString, Context, Hub, NegotiateOptions, Server};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = ConnectionString::parse(&std::env::var("SWITCHBOARD_CONNECTION_STRING")?)?;
//! let chat = Hub::builder("chat")
//!     .method("SendMessage", |ctx: Context, (user, text): (String, String)| async move {
//!         ctx.clients().all().send("ReceiveMessage", (user, text)).await
//!     })
//!     .method("JoinGroup", |ctx: Context, (group,): (String,)| async move {
//!         ctx.groups().join(&group).await
//!     })
//!     .build();
//! let server = Server::builder(conn).hub(chat).start();
//! server.wait_ready().await?;
//!
//! // Anyone may chat here; a real app derives the user from its own auth.
//! let app: axum::Router = server.negotiate_routes(|_request| async {
//!     Ok(NegotiateOptions::new())
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Method names match case-insensitively. Arguments are a tuple bound from
//! the client's argument array; results are any `Serialize` value. Failures
//! reach the client with the reference SignalR error texts: see
//! [`HubError`] for what the client sees.
//!
//! Beyond plain methods:
//!
//! - [`HubBuilder::stream_method`] serves `connection.stream(...)`: the
//!   method returns a stream of items; a client cancel (or disconnect) drops
//!   it and the client still gets its completion.
//! - An [`UploadStream`] in a method's arguments tuple receives a stream the
//!   client uploads (a `Subject` in JavaScript) while the method runs.
//! - [`SingleClientProxy::invoke`] calls a method on one client and waits
//!   for the value it returns (client results).
//! - Arguments are decoded from the client's own JSON or MessagePack bytes,
//!   and results and stream items are encoded in the caller's protocol.
//!   Sends to clients carry JSON; the proxy converts for MessagePack clients.
//!
//! Invocations from one connection run one at a time, in order; different
//! connections run concurrently. Streaming methods (once their stream is
//! returned) and methods reading upload streams run beside that order, as
//! in SignalR. Outside handlers, [`Server::hub`] gives a
//! [`HubContext`] with the same sending and group API.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clients;
mod connection_string;
mod context;
mod dispatch;
mod error;
mod groups;
mod hub;
mod link;
mod links;
mod negotiate;
mod server;
mod token;

pub use clients::{
    CallerClients, ClientProxy, Clients, DEFAULT_CLIENT_RESULT_TIMEOUT, SingleClientProxy,
};
pub use connection_string::{ConnectionString, DEFAULT_SERVER_PORT, ServerDiscovery};
pub use context::{Connection, Context, Disconnect, HubContext};
pub use error::{Error, ErrorKind, Result};
pub use groups::{CallerGroups, Groups};
pub use hub::{
    Arguments, Hub, HubBuilder, HubError, MAX_UNREAD_UPLOAD_ITEMS, MethodResult, UploadError,
    UploadStream,
};
pub use links::{DEFAULT_DISCOVERY_INTERVAL, LinkInfo, Resolve};
pub use negotiate::{NegotiateOptions, NegotiateRequest, NegotiateResponse, Negotiator};
pub use server::{
    DEFAULT_ACK_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_QUEUE_CAPACITY, DEFAULT_RECONNECT_MAX, DEFAULT_RECONNECT_MIN, DEFAULT_SHUTDOWN_GRACE,
    Server, ServerBuilder,
};
pub use token::{DEFAULT_CLIENT_TOKEN_LIFETIME, key_id};
