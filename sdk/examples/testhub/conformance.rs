//! The HTTP edges the SignalR client conformance suites probe on the app
//! server: negotiate redirects (with and without a token), a negotiate that
//! fails with a body, cookies set at negotiate, the app's own bearer tokens
//! for `authorizedhub`, and permissive CORS so a page on another origin can
//! negotiate here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use switchboard_sdk::{NegotiateOptions, Negotiator};

/// The user every app token from `GET /generateJwtToken` names.
pub const TEST_USER: &str = "testuser";
/// How long an app token is valid; short, so suites can see it expire.
const APP_TOKEN_LIFETIME_SECS: u64 = 5;
const APP_TOKEN_ISSUER: &str = "switchboard-testhub";
const APP_TOKEN_AUDIENCE: &str = "switchboard-testhub-clients";

/// The cookies every negotiate answer sets; `expiredCookie` is already
/// expired, so a client that keeps cookies correctly never sends it back.
const NEGOTIATE_COOKIES: [&str; 3] = [
    "testCookie=testValue; Path=/",
    "testCookie2=testValue2; Path=/",
    "expiredCookie=doesntmatter; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
];

/// The app's own bearer tokens: what a login would hand a user, checked at
/// the negotiate of `authorizedhub`. Signed with a key made at start-up, so
/// they are unrelated to the proxy's client tokens.
pub struct AppAuth {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

#[derive(Debug, Serialize, Deserialize)]
struct AppClaims {
    sub: String,
    iss: String,
    aud: String,
    exp: u64,
}

impl AppAuth {
    /// A fresh random signing key.
    pub fn new() -> Self {
        let secret: [u8; 32] = rand::random();
        Self {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
        }
    }

    /// A token for [`TEST_USER`], valid for five seconds.
    pub fn mint(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let claims = AppClaims {
            sub: TEST_USER.to_owned(),
            iss: APP_TOKEN_ISSUER.to_owned(),
            aud: APP_TOKEN_AUDIENCE.to_owned(),
            exp: now + APP_TOKEN_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The user named by a valid, unexpired `Authorization: Bearer` token.
    pub fn user(&self, headers: &HeaderMap) -> Option<String> {
        let token = headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .trim();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[APP_TOKEN_ISSUER]);
        validation.set_audience(&[APP_TOKEN_AUDIENCE]);
        let data = jsonwebtoken::decode::<AppClaims>(token, &self.decoding, &validation).ok()?;
        Some(data.claims.sub)
    }
}

/// What the redirect and token routes need.
#[derive(Clone)]
pub struct Edges {
    pub auth: Arc<AppAuth>,
    pub negotiator: Negotiator,
    /// Counts answers of `/redirect`, so each redirect is told apart.
    pub redirects: Arc<AtomicU64>,
}

/// `GET /generateJwtToken`: an app token for [`TEST_USER`], as plain text.
pub async fn generate_jwt_token(State(edges): State<Edges>) -> Response {
    match edges.auth.mint() {
        Ok(token) => token.into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedirectQuery {
    /// Where the app server is reached; defaults to the request's `Host`.
    base_url: Option<String>,
    /// `true`: answer `{url, accessToken}` straight to the proxy.
    with_token: Option<bool>,
    /// The hub the redirect leads to (default `testhub`).
    hub: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Redirect {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
}

/// `POST /redirect/negotiate`: every answer carries the next
/// `numRedirects`. Without `withToken` it sends the client to this app's
/// own negotiate for the hub (`{url}` only; the client negotiates again
/// there). With `withToken=true` it sends the client to the proxy with a
/// token (`{url, accessToken}`), the count riding in the proxy URL's query.
pub async fn redirect(
    State(edges): State<Edges>,
    Query(query): Query<RedirectQuery>,
    headers: HeaderMap,
) -> Response {
    let count = edges.redirects.fetch_add(1, Ordering::Relaxed) + 1;
    let hub = query.hub.unwrap_or_else(|| "testhub".to_owned());
    if query.with_token == Some(true) {
        return match edges
            .negotiator
            .client_token(&hub, &NegotiateOptions::new())
        {
            Ok(token) => Json(Redirect {
                url: format!("{}&numRedirects={count}", edges.negotiator.client_url(&hub)),
                access_token: Some(token),
            })
            .into_response(),
            Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
        };
    }
    let base = match query.base_url {
        Some(base) => base,
        None => match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
            Some(host) => format!("http://{host}"),
            None => return (StatusCode::BAD_REQUEST, "no Host and no baseUrl").into_response(),
        },
    };
    Json(Redirect {
        url: format!("{}/{hub}?numRedirects={count}", base.trim_end_matches('/')),
        access_token: None,
    })
    .into_response()
}

/// `/bad-negotiate` (and its `/negotiate`): a failed negotiate with a body
/// the client must surface in its error.
pub async fn bad_negotiate() -> Response {
    (StatusCode::BAD_REQUEST, "Some response from server").into_response()
}

/// Sets [`NEGOTIATE_COOKIES`] on a negotiate answer.
pub async fn negotiate_cookies(mut response: Response) -> Response {
    for cookie in NEGOTIATE_COOKIES {
        response
            .headers_mut()
            .append(header::SET_COOKIE, HeaderValue::from_static(cookie));
    }
    response
}

/// Lets a page on any origin call this app with credentials, echoing what
/// the browser asked for, and answers preflights with 204. Test use only:
/// a real app lists the origins it trusts.
pub async fn permissive_cors(request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let method = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .cloned();
    let asked_headers = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned();
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        if let Some(method) = method {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method);
        }
        if let Some(asked) = asked_headers {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
        }
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}
