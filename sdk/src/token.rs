//! Minting of HS256 access tokens: client tokens handed out at negotiate time
//! and link tokens the app server presents to the proxy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::connection_string::ConnectionString;
use crate::error::Result;

/// Lifetime of a client token when the app does not choose one.
pub const DEFAULT_CLIENT_TOKEN_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// Lifetime of a link token; a fresh one is minted on every (re)connect.
pub const LINK_TOKEN_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// Claims the SDK sets itself; extra claims with these names are ignored.
const RESERVED_CLAIMS: [&str; 6] = ["aud", "exp", "nbf", "iat", "nameid", "sub"];

/// The `kid` header for an access key: lowercase hex of the first 8 bytes of
/// SHA-256 of the key, so the proxy can pick the right key during rotation.
pub fn key_id(access_key: &str) -> String {
    let digest = Sha256::digest(access_key.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The client URL (and client token audience) for a hub.
pub(crate) fn client_url(endpoint: &str, hub: &str) -> String {
    format!("{endpoint}/client/?hub={}", hub.to_ascii_lowercase())
}

/// What goes into a client access token besides the audience.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientClaims<'a> {
    pub user_id: Option<&'a str>,
    pub extra: Option<&'a Map<String, Value>>,
    /// Seconds from now; negative mints an already expired token.
    pub lifetime_secs: Option<i64>,
}

/// Mints a client access token for `hub`.
pub(crate) fn client_token(
    conn: &ConnectionString,
    hub: &str,
    claims: &ClientClaims<'_>,
) -> Result<String> {
    let now = unix_now();
    let lifetime = claims
        .lifetime_secs
        .unwrap_or(DEFAULT_CLIENT_TOKEN_LIFETIME.as_secs() as i64);
    let mut body = Map::new();
    if let Some(extra) = claims.extra {
        for (name, value) in extra {
            if !RESERVED_CLAIMS.contains(&name.as_str()) {
                body.insert(name.clone(), value.clone());
            }
        }
    }
    body.insert("aud".into(), client_url(conn.endpoint(), hub).into());
    body.insert("iat".into(), now.into());
    body.insert("nbf".into(), now.into());
    body.insert("exp".into(), (now + lifetime).into());
    if let Some(user) = claims.user_id {
        body.insert("nameid".into(), user.into());
    }
    sign(conn.access_key(), &body)
}

/// Mints the token an app server presents when it opens a link.
pub(crate) fn link_token(conn: &ConnectionString, server_id: &str) -> Result<String> {
    let now = unix_now();
    let mut body = Map::new();
    body.insert("aud".into(), format!("{}/server/", conn.endpoint()).into());
    body.insert("sub".into(), server_id.into());
    body.insert("iat".into(), now.into());
    body.insert("nbf".into(), now.into());
    body.insert(
        "exp".into(),
        (now + LINK_TOKEN_LIFETIME.as_secs() as i64).into(),
    );
    sign(conn.access_key(), &body)
}

fn sign(access_key: &str, claims: &Map<String, Value>) -> Result<String> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key_id(access_key));
    let key = EncodingKey::from_secret(access_key.as_bytes());
    Ok(jsonwebtoken::encode(&header, claims, &key)?)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn conn() -> ConnectionString {
        ConnectionString::parse("Endpoint=http://127.0.0.1:8080/;AccessKey=test-key").unwrap()
    }

    fn decode(token: &str, aud: &str) -> Map<String, Value> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[aud]);
        validation.validate_nbf = true;
        jsonwebtoken::decode::<Map<String, Value>>(
            token,
            &DecodingKey::from_secret(b"test-key"),
            &validation,
        )
        .unwrap()
        .claims
    }

    #[test]
    fn key_id_is_first_eight_sha256_bytes_in_hex() {
        // SHA-256("test-key") starts with 62af8704764faf8e.
        assert_eq!(key_id("test-key"), "62af8704764faf8e");
        assert_eq!(key_id("test-key").len(), 16);
    }

    #[test]
    fn client_token_carries_audience_user_lifetime_and_extra_claims() {
        let mut extra = Map::new();
        extra.insert("role".into(), "admin".into());
        extra.insert("aud".into(), "http://evil/".into());
        let token = client_token(
            &conn(),
            "Chat",
            &ClientClaims {
                user_id: Some("alice"),
                extra: Some(&extra),
                lifetime_secs: Some(120),
            },
        )
        .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.kid.as_deref(), Some(key_id("test-key").as_str()));

        let claims = decode(&token, "http://127.0.0.1:8080/client/?hub=chat");
        assert_eq!(claims["nameid"], "alice");
        assert_eq!(claims["role"], "admin");
        let iat = claims["iat"].as_i64().unwrap();
        assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
        assert_eq!(claims["exp"].as_i64().unwrap(), iat + 120);
        assert!((iat - unix_now()).abs() <= 2);
    }

    #[test]
    fn anonymous_client_token_has_no_user_and_default_lifetime() {
        let token = client_token(&conn(), "chat", &ClientClaims::default()).unwrap();
        let claims = decode(&token, "http://127.0.0.1:8080/client/?hub=chat");
        assert!(!claims.contains_key("nameid"));
        let iat = claims["iat"].as_i64().unwrap();
        assert_eq!(claims["exp"].as_i64().unwrap(), iat + 3600);
    }

    #[test]
    fn negative_lifetime_mints_an_expired_token() {
        let token = client_token(
            &conn(),
            "chat",
            &ClientClaims {
                lifetime_secs: Some(-60),
                ..ClientClaims::default()
            },
        )
        .unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["http://127.0.0.1:8080/client/?hub=chat"]);
        validation.leeway = 0;
        let err = jsonwebtoken::decode::<Map<String, Value>>(
            &token,
            &DecodingKey::from_secret(b"test-key"),
            &validation,
        )
        .unwrap_err();
        assert_eq!(
            err.kind(),
            &jsonwebtoken::errors::ErrorKind::ExpiredSignature
        );
    }

    #[test]
    fn link_token_names_the_server_and_server_audience() {
        let token = link_token(&conn(), "app-1").unwrap();
        let claims = decode(&token, "http://127.0.0.1:8080/server/");
        assert_eq!(claims["sub"], "app-1");
        let iat = claims["iat"].as_i64().unwrap();
        assert_eq!(claims["exp"].as_i64().unwrap(), iat + 3600);
    }
}
