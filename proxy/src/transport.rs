//! The client port: negotiate and the transport endpoint.
//!
//! Routes follow the managed-service layout: clients negotiate at
//! `/client/negotiate?hub=H` and connect at `/client/?hub=H&id=TOKEN` with
//! WebSockets, server-sent events or long polling. The connection [`table`]
//! links the requests of one connection.

pub mod cors;
pub mod handover;
pub mod long_polling;
pub mod negotiate;
mod posting;
pub mod request;
pub mod sse;
pub mod table;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::serve::ListenerExt as _;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::request::{Query, forwarded_headers};
use self::table::{Entry, Refusal};
use crate::Shared;
use crate::auth::Identity;
use crate::config::Transport;
use crate::connection::Accepted;
use crate::connection::handle::Meta;
use crate::ids::ConnectionId;
use crate::tls::{Port, Reloading, TlsListener};

/// The client-port routes.
pub fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/client/negotiate", any(negotiate::handle))
        .route("/client", any(connect))
        .route("/client/", any(connect))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            cors::layer,
        ))
        .layer(axum::middleware::map_response_with_state(
            shared.clone(),
            count_refusals,
        ))
        .with_state(shared)
}

/// Counts error answers by reason (`switchboard_requests_refused_total`).
async fn count_refusals(State(shared): State<Arc<Shared>>, response: Response) -> Response {
    shared.metrics.request_answered(response.status());
    response
}

/// Serves the client port until `stopped` turns true: over TLS when `tls`
/// is given (HTTP/1.1 offered by ALPN), plain HTTP otherwise.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<Reloading>>,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let handshake_timeout = shared.config.handshake_timeout;
    let metrics = shared.metrics.clone();
    let app = routes(shared).into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let result = match tls {
        None => {
            axum::serve(listener.tap_io(|tcp| crate::no_delay(tcp)), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => {
            let listener =
                TlsListener::new(listener, tls, handshake_timeout, Port::Client, metrics);
            // axum provides the peer address (`ConnectInfo<SocketAddr>`) for
            // any listener only through `tap_io`; the tap does nothing else.
            axum::serve(listener.tap_io(|_| {}), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "client server failed");
    }
}

/// The transport endpoint, `/client/?hub=H[&id=TOKEN]`: WebSocket upgrades,
/// server-sent event streams and long polls (GET), client data (POST) and
/// long-polling ends (DELETE). Status codes and texts follow the reference
/// server.
async fn connect(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    ws: Result<websocket::Upgrade, websocket::NotAnUpgrade>,
    body: Body,
) -> Response {
    let query = Query::parse(raw.as_deref());
    let Some(hub) = query
        .get("hub")
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase)
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "The 'hub' query parameter is required.",
        );
    };
    let token = query.get("id").filter(|t| !t.is_empty());
    let meta = Meta {
        claims: Vec::new(),
        transport: "",
        remote_address: remote.to_string(),
        query: query.forwarded(),
        headers: forwarded_headers(&headers, &shared.config.forward_headers),
    };
    let request = Request { shared, hub, meta };
    match method {
        Method::GET | Method::CONNECT => {}
        Method::POST => return posting::post(&request, token, body).await,
        Method::DELETE => return posting::delete(&request, token).await,
        _ => return text(StatusCode::METHOD_NOT_ALLOWED, ""),
    }
    if accepts_event_stream(&headers) {
        let entry = match request.entry(token) {
            Ok(entry) => entry,
            Err(rejection) => return rejection.into_response(),
        };
        return sse::start(request, entry);
    }
    if let Ok(ws) = ws {
        let opening = match token {
            Some(_) => match request.entry(token) {
                Ok(entry) => websocket::Opening::Negotiated(entry),
                Err(rejection) => return rejection.into_response(),
            },
            // skipNegotiation: the token is checked here instead.
            None if request.shared.is_draining() => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "This Switchboard node is shutting down; try again.",
                );
            }
            None => match negotiate::check_token(&request.shared, &headers, &query, &request.hub) {
                Ok(identity) => websocket::Opening::Direct(identity),
                Err(why) => return negotiate::unauthorized(why),
            },
        };
        return websocket::start(request, opening, ws);
    }
    let entry = match request.entry(token) {
        Ok(entry) => entry,
        Err(rejection) => return no_cache(rejection.into_response()),
    };
    no_cache(long_polling::poll(request, entry).await)
}

/// What every transport request knows once its hub is known.
pub(crate) struct Request {
    pub shared: Arc<Shared>,
    /// Lower-case hub name.
    pub hub: String,
    pub meta: Meta,
}

impl Request {
    /// The connection named by `token`, or the reference server's answer
    /// when there is none.
    pub fn entry(&self, token: Option<&str>) -> Result<Arc<Entry>, Rejection> {
        let token = token.ok_or(Rejection::MissingId)?;
        match self.shared.negotiated.get(token) {
            Some(entry) if entry.hub == self.hub => Ok(entry),
            _ => Err(Rejection::UnknownId),
        }
    }

    /// Refuses a transport this hub does not offer.
    pub fn check_enabled(&self, transport: Transport) -> Result<(), Rejection> {
        if self
            .shared
            .config
            .transports_for(&self.hub)
            .contains(transport)
        {
            return Ok(());
        }
        Err(Rejection::Disabled(transport))
    }

    /// What a new connection on `entry` (or a skipNegotiation one) starts with.
    pub fn accepted(&self, id: ConnectionId, identity: Identity, transport: Transport) -> Accepted {
        let mut meta = self.meta.clone();
        meta.transport = transport.name();
        Accepted {
            id,
            hub: self.hub.clone(),
            identity,
            meta,
        }
    }
}

/// Why a transport request found no connection to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    MissingId,
    UnknownId,
    Disabled(Transport),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Self::MissingId => text(StatusCode::BAD_REQUEST, "Connection ID required"),
            Self::UnknownId => text(StatusCode::NOT_FOUND, "No Connection with that ID"),
            Self::Disabled(t) => text(
                StatusCode::NOT_FOUND,
                format!(
                    "{} transport not supported by this end point type",
                    t.name()
                ),
            ),
        }
    }
}

/// The answer to a request that cannot use its connection.
pub(crate) fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::AlreadyActive => text(StatusCode::CONFLICT, ""),
        Refusal::CannotChange => text(
            StatusCode::BAD_REQUEST,
            "Cannot change transports mid-connection",
        ),
        Refusal::PostOnWebSocket => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST requests are not allowed for WebSocket connections.",
        ),
        Refusal::DeleteNotLongPolling => text(
            StatusCode::BAD_REQUEST,
            "Cannot terminate this connection using the DELETE endpoint.",
        ),
        Refusal::TooLarge => text(StatusCode::PAYLOAD_TOO_LARGE, ""),
        Refusal::Ended => text(StatusCode::NOT_FOUND, ""),
    }
}

/// A `text/plain` answer, as the reference server gives.
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], body.into()).into_response()
}

/// Long-poll answers must never be cached.
fn no_cache(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::EXPIRES,
        HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
    );
    response
}

fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}
