//! A small SignalR client speaking the JSON hub protocol over WebSockets,
//! for tests that need control over every step and byte: negotiate through
//! an app server's redirect and then the proxy, open the socket, handshake,
//! invoke, read messages one by one, or stop reading on purpose (nothing is
//! read from the socket unless the caller asks for the next message).
//!
//! ```no_run
//! # async fn example(app_url: &str) -> Result<(), switchboard_tests::signalr::ClientError> {
//! use serde_json::json;
//! use switchboard_tests::signalr;
//!
//! let http = switchboard_tests::http::client();
//! let mut alice = signalr::connect(&http, app_url, "testhub", Some("alice")).await?;
//! let echoed = alice.invoke("Echo", json!(["hi"])).await?.into_result()?;
//! assert_eq!(echoed, Some(json!("hi")));
//! # Ok(())
//! # }
//! ```

mod connection;
mod error;
mod message;
mod negotiate;

pub use connection::{ConnectOptions, Connection, Ended};
pub use error::ClientError;
pub use message::{Completion, Message, RECORD_SEPARATOR, invocation_record};
pub use negotiate::{
    Negotiation, Redirect, negotiate_at_proxy, negotiate_url, redirect_from_app, websocket_url,
};

/// Negotiates through the app server at `app_url` (which redirects to the
/// proxy with a token for `user`), negotiates at the proxy, opens the
/// WebSocket and completes the JSON handshake.
pub async fn connect(
    http: &reqwest::Client,
    app_url: &str,
    hub: &str,
    user: Option<&str>,
) -> Result<Connection, ClientError> {
    connect_with(http, app_url, hub, user, &ConnectOptions::default()).await
}

/// [`connect`] with socket options.
pub async fn connect_with(
    http: &reqwest::Client,
    app_url: &str,
    hub: &str,
    user: Option<&str>,
    options: &ConnectOptions,
) -> Result<Connection, ClientError> {
    let redirect = redirect_from_app(http, app_url, hub, user).await?;
    let negotiation = negotiate_at_proxy(http, &redirect.url, Some(&redirect.access_token)).await?;
    let url = websocket_url(&redirect.url, Some(negotiation.id_for_transport()))?;
    let mut connection = Connection::open(&url, Some(&redirect.access_token), options).await?;
    connection.set_connection_id(negotiation.connection_id);
    connection.handshake().await?;
    Ok(connection)
}
