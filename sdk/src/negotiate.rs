//! The negotiate redirect: the app server decides who the client is, mints
//! a client access token and sends the client on to the proxy with
//! `{url, accessToken}`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, Uri, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connection_string::ConnectionString;
use crate::error::Result;
use crate::token::{self, ClientClaims};

/// Who the client is and how long its token lives.
#[derive(Debug, Clone, Default)]
pub struct NegotiateOptions {
    user_id: Option<String>,
    claims: Map<String, Value>,
    lifetime_secs: Option<i64>,
}

impl NegotiateOptions {
    /// An anonymous client with the default token lifetime (one hour).
    pub fn new() -> Self {
        Self::default()
    }

    /// The user id (`nameid` claim); the proxy uses it to address users.
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Adds a claim the app server gets back in
    /// [`Connection::claims`](crate::Connection::claims). The registered
    /// claims (`aud`, `exp`, `nbf`, `iat`, `nameid`, `sub`) cannot be set
    /// this way.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// How long the token is valid (default one hour).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime_secs = Some(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2));
        self
    }

    /// The lifetime in seconds; a negative value mints an already expired
    /// token, which is useful to test that clients are refused.
    pub fn lifetime_secs(mut self, seconds: i64) -> Self {
        self.lifetime_secs = Some(seconds);
        self
    }
}

/// The negotiate answer that redirects a SignalR client to the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NegotiateResponse {
    /// `{endpoint}/client/?hub={hub}`.
    pub url: String,
    /// The client access token.
    pub access_token: String,
}

/// Mints client tokens and negotiate answers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Negotiator {
    conn: Arc<ConnectionString>,
}

impl Negotiator {
    /// A negotiator for the proxy described by `conn`.
    pub fn new(conn: ConnectionString) -> Self {
        Self {
            conn: Arc::new(conn),
        }
    }

    /// The client URL for `hub`.
    pub fn client_url(&self, hub: &str) -> String {
        token::client_url(self.conn.endpoint(), hub)
    }

    /// Mints a client access token for `hub`.
    pub fn client_token(&self, hub: &str, options: &NegotiateOptions) -> Result<String> {
        let claims = ClientClaims {
            user_id: options.user_id.as_deref(),
            extra: Some(&options.claims),
            lifetime_secs: options.lifetime_secs,
        };
        token::client_token(&self.conn, hub, &claims)
    }

    /// The `{url, accessToken}` answer for `hub`.
    pub fn negotiate(&self, hub: &str, options: &NegotiateOptions) -> Result<NegotiateResponse> {
        Ok(NegotiateResponse {
            url: self.client_url(hub),
            access_token: self.client_token(hub, options)?,
        })
    }

    /// `POST /{hub}/negotiate` routes for these hubs. `hook` decides who the
    /// client is from the request (typically from the app's own session or
    /// auth header); returning `Err(response)` answers with that response
    /// instead (e.g. 401).
    pub fn routes<S, I, H, F, Fut>(&self, hubs: I, hook: F) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
        I: IntoIterator<Item = H>,
        H: Into<String>,
        F: Fn(NegotiateRequest) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<NegotiateOptions, Response>> + Send + 'static,
    {
        let mut router = Router::new();
        for hub in hubs {
            let hub: String = hub.into();
            let path = format!("/{hub}/negotiate");
            let negotiator = self.clone();
            let hook = hook.clone();
            let handler = move |request: axum::extract::Request| {
                let negotiator = negotiator.clone();
                let hook = hook.clone();
                let hub = hub.clone();
                async move {
                    let (parts, _body) = request.into_parts();
                    let request = NegotiateRequest {
                        hub: hub.clone(),
                        parts,
                    };
                    match hook(request).await {
                        Ok(options) => negotiator.respond(&hub, &options),
                        Err(response) => response,
                    }
                }
            };
            router = router.route(&path, post(handler));
        }
        router
    }

    fn respond(&self, hub: &str, options: &NegotiateOptions) -> Response {
        match self.negotiate(hub, options) {
            Ok(body) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response(),
            Err(err) => {
                tracing::error!(error = %err, hub, "cannot answer negotiate");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot mint an access token",
                )
                    .into_response()
            }
        }
    }
}

/// A negotiate request, given to the hook that decides the client's
/// identity.
#[derive(Debug)]
pub struct NegotiateRequest {
    hub: String,
    parts: Parts,
}

impl NegotiateRequest {
    /// The hub being negotiated.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// The request URI, including the client's query string.
    pub fn uri(&self) -> &Uri {
        &self.parts.uri
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    /// The request head, with extensions set by earlier middleware.
    pub fn parts(&self) -> &Parts {
        &self.parts
    }

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let Query(mut params) =
            Query::<std::collections::HashMap<String, String>>::try_from_uri(&self.parts.uri)
                .ok()?;
        params.remove(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_points_at_the_client_url_with_a_token_for_the_hub() {
        let conn = ConnectionString::parse("Endpoint=http://proxy:8080;AccessKey=k").unwrap();
        let answer = Negotiator::new(conn)
            .negotiate("Chat", &NegotiateOptions::new().user_id("bob"))
            .unwrap();
        assert_eq!(answer.url, "http://proxy:8080/client/?hub=chat");
        let json = serde_json::to_value(&answer).unwrap();
        assert!(json["accessToken"].as_str().unwrap().split('.').count() == 3);
        assert!(json.get("url").is_some());
    }
}
