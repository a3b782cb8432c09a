//! `POST /client/negotiate?hub=H`: checks the access token and hands out a
//! connection id and token for the transport request that follows.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use super::request::{Query, access_token};
use crate::Shared;
use crate::auth::{self, Identity};
use crate::config::{Transport, Transports};
use crate::ids::{ConnectionId, random_id};

/// The connection table lives in [`super::table`]; negotiate fills it.
pub type Negotiated = super::table::Table;

/// Drops negotiations nobody claimed in time.
pub async fn sweep(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let period = shared.config.connect_timeout.max(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => shared.negotiated.sweep(),
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// An empty-bodied 401: the official JS client reports it as
/// `Unauthorized: Status code '401'`.
pub fn unauthorized(why: auth::TokenError) -> Response {
    tracing::debug!(reason = %why, "client token refused");
    StatusCode::UNAUTHORIZED.into_response()
}

/// Validates a client token for `hub` (lower-case).
pub fn check_token(
    shared: &Shared,
    headers: &HeaderMap,
    query: &Query,
    hub: &str,
) -> Result<Identity, auth::TokenError> {
    let token = access_token(headers, query).ok_or(auth::TokenError::Missing)?;
    let audience = auth::client_audience(&shared.config.public_url, hub);
    shared.keys.validate(token, &audience)
}

/// The handler for `/client/negotiate`.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")]).into_response();
    }
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
    let version = match query.get("negotiateVersion") {
        None => 0,
        Some(v) => match v.parse::<u32>() {
            Ok(v) => v.min(1),
            Err(_) => {
                return json_body(
                    json!({"error": format!("The 'negotiateVersion' query parameter '{v}' cannot be parsed.")}),
                );
            }
        },
    };
    let identity = match check_token(&shared, &headers, &query, &hub) {
        Ok(identity) => identity,
        Err(why) => return unauthorized(why),
    };
    if shared.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "This Switchboard node is shutting down; try again.",
        )
            .into_response();
    }
    if !shared.links.serves(&hub) {
        let message = format!("No app server is connected for hub '{hub}'.");
        return (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    }
    let id = ConnectionId::random(&shared.node_id);
    // Version 0 clients present the connection id itself as `id=`.
    let token = if version == 0 {
        id.to_string()
    } else {
        random_id()
    };
    let expires = Instant::now() + shared.config.connect_timeout;
    let enabled = shared.config.transports_for(&hub);
    let transports = available_transports(enabled);
    // Only WebSockets can resume, so only offer it when they are on.
    let stateful = shared.config.stateful_reconnect
        && enabled.contains(Transport::WebSockets)
        && query
            .get("useStatefulReconnect")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    shared
        .negotiated
        .insert(token.clone(), id.clone(), hub, identity, expires, stateful);
    let mut body = if version == 0 {
        json!({"negotiateVersion": 0, "connectionId": id.as_str(), "availableTransports": transports})
    } else {
        json!({"negotiateVersion": 1, "connectionId": id.as_str(), "connectionToken": token, "availableTransports": transports})
    };
    if stateful {
        body["useStatefulReconnect"] = json!(true);
    }
    json_body(body)
}

/// `availableTransports` for the enabled transports.
fn available_transports(enabled: Transports) -> serde_json::Value {
    let list: Vec<_> = enabled
        .iter()
        .map(|t| {
            let formats: &[&str] = match t {
                Transport::ServerSentEvents => &["Text"],
                Transport::WebSockets | Transport::LongPolling => &["Text", "Binary"],
            };
            json!({"transport": t.name(), "transferFormats": formats})
        })
        .collect();
    serde_json::Value::Array(list)
}

fn json_body(v: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}
