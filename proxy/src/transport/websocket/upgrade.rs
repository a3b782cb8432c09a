//! The HTTP/1.1 opening handshake (RFC 6455 §4.2): recognises an upgrade
//! request, answers 101 and hands the upgraded connection to a task.

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tracing::{Instrument as _, Span};

use super::socket::Socket;

/// The socket of an upgraded client connection.
pub type ClientSocket = Socket<TokioIo<hyper::upgrade::Upgraded>>;

/// Appended to the client's key before hashing (RFC 6455 §1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A valid WebSocket upgrade request.
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request is not a WebSocket upgrade; such requests are served by
/// the other transports.
#[derive(Debug, thiserror::Error)]
#[error("not a websocket upgrade request")]
pub struct NotAnUpgrade;

impl IntoResponse for NotAnUpgrade {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = NotAnUpgrade;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, NotAnUpgrade> {
        let headers = &parts.headers;
        let valid = parts.version <= Version::HTTP_11
            && parts.method == Method::GET
            && has_token(headers, header::CONNECTION, "upgrade")
            && has_token(headers, header::UPGRADE, "websocket")
            && headers
                .get(header::SEC_WEBSOCKET_VERSION)
                .is_some_and(|v| v == "13");
        let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
        match (valid, key) {
            (true, Some(key)) => {
                let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or(NotAnUpgrade)?;
                Ok(Self { key, on_upgrade })
            }
            _ => Err(NotAnUpgrade),
        }
    }
}

impl Upgrade {
    /// Answers 101 and runs `serve` on the socket, in `span`, once the
    /// connection is upgraded. `limit` bounds a client message in bytes.
    pub fn on_upgrade<F, Fut>(self, limit: usize, span: Span, serve: F) -> Response
    where
        F: FnOnce(Box<ClientSocket>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(
            async move {
                // Not matched around the await below: what is held across it
                // stays in every idle connection's task.
                let upgraded = match on_upgrade.await {
                    Ok(upgraded) => upgraded,
                    Err(error) => return tracing::debug!(%error, "websocket upgrade failed"),
                };
                serve(Box::new(Socket::new(TokioIo::new(upgraded), limit))).await
            }
            // Around the whole task rather than inside `serve`, where it would
            // be held twice.
            .instrument(span),
        );
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (header::SEC_WEBSOCKET_ACCEPT, accept),
            ],
        )
            .into_response()
    }
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
fn accept_key(key: &[u8]) -> HeaderValue {
    let digest = Sha1::new()
        .chain_update(key)
        .chain_update(ACCEPT_GUID)
        .finalize();
    HeaderValue::try_from(BASE64.encode(digest)).expect("base64 is a valid header value")
}

/// Whether a comma-separated header has `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc_example() {
        // RFC 6455 §1.3.
        let accept = accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn connection_tokens_are_matched_in_lists() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(has_token(&headers, header::CONNECTION, "upgrade"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert!(!has_token(&headers, header::CONNECTION, "upgrade"));
    }
}
