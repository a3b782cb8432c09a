//! The client port: negotiate and the transport endpoint.
//!
//! Routes follow the managed-service layout: clients negotiate at
//! `/client/negotiate?hub=H` and connect at `/client/?hub=H&id=TOKEN`.

pub mod cors;
pub mod negotiate;
pub mod request;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, Method, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::request::{Query, forwarded_headers};
use crate::Shared;
use crate::connection::Accepted;
use crate::connection::handle::Meta;
use crate::ids::ConnectionId;

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
        .with_state(shared)
}

/// Serves the client port until `stopped` turns true.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let app = routes(shared).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "client server failed");
    }
}

/// The transport endpoint, `/client/?hub=H[&id=TOKEN]`.
async fn connect(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let query = Query::parse(raw.as_deref());
    let Some(hub) = query
        .get("hub")
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase)
    else {
        return (
            StatusCode::BAD_REQUEST,
            "The 'hub' query parameter is required.",
        )
            .into_response();
    };
    match method {
        Method::GET => {}
        Method::POST => {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                "POST requests are not allowed on WebSocket connections.",
            )
                .into_response();
        }
        Method::DELETE => {
            return (
                StatusCode::BAD_REQUEST,
                "Cannot terminate this connection using the DELETE endpoint.",
            )
                .into_response();
        }
        _ => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
    let (id, identity) = match query.get("id") {
        Some(token) => match shared.negotiated.take(token) {
            Some(n) if n.hub == hub => (n.id, n.identity),
            _ => return (StatusCode::NOT_FOUND, "No Connection with that ID").into_response(),
        },
        // skipNegotiation: the token is checked here instead.
        None => match negotiate::check_token(&shared, &headers, &query, &hub) {
            Ok(identity) => (ConnectionId::random(), identity),
            Err(why) => return negotiate::unauthorized(why),
        },
    };
    let Ok(ws) = ws else {
        return (
            StatusCode::BAD_REQUEST,
            "This endpoint accepts WebSocket requests only.",
        )
            .into_response();
    };
    let meta = Meta {
        claims: Vec::new(),
        transport: "WebSockets",
        remote_address: remote.to_string(),
        query: query.forwarded(),
        headers: forwarded_headers(&headers),
    };
    websocket::upgrade(
        ws,
        shared,
        Accepted {
            id,
            hub,
            identity,
            meta,
        },
    )
}
