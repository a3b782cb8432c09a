//! Cross-origin requests from browsers, for the origins the operator allows.
//!
//! Allowed origins are echoed with `Access-Control-Allow-Credentials: true`
//! (the official client sends credentials); preflights echo the requested
//! method and headers and answer 204. Other origins get no CORS headers, so
//! the browser blocks them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::Shared;

/// Axum middleware applying the policy to every client-port request.
pub async fn layer(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let allowed = origin
        .as_ref()
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| shared.config.allowed_origins.allows(o));
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        if !allowed {
            return StatusCode::FORBIDDEN.into_response();
        }
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        echo(
            request.headers(),
            h,
            header::ACCESS_CONTROL_REQUEST_METHOD,
            header::ACCESS_CONTROL_ALLOW_METHODS,
        );
        echo(
            request.headers(),
            h,
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        allow(h, origin);
        return response;
    }
    let mut response = next.run(request).await;
    if allowed {
        allow(response.headers_mut(), origin);
    }
    response
}

fn echo(
    from: &HeaderMap,
    to: &mut HeaderMap,
    requested: header::HeaderName,
    allowed: header::HeaderName,
) {
    if let Some(v) = from.get(requested) {
        to.insert(allowed, v.clone());
    }
}

fn allow(h: &mut HeaderMap, origin: Option<HeaderValue>) {
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}
