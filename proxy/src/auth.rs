//! Access-token validation for clients and app-server links.
//!
//! Tokens are JWTs signed with one of the configured access keys (HMAC:
//! HS256, or HS384/HS512). A key's id (`kid`) is derived from the key itself,
//! so the proxy and the sdk agree on it without configuration: the lowercase
//! hex of the first 8 bytes of the key's SHA-256. Several keys may be active
//! at once to allow rotation.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 5;

/// Claims that describe the token itself and are not forwarded to app servers.
const REGISTERED: [&str; 6] = ["aud", "exp", "nbf", "iat", "iss", "jti"];

/// Why a token was refused. Never shown to clients (they get an empty 401);
/// logged at debug level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no access token")]
    Missing,
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token algorithm {0:?} is not accepted (HS256, HS384, HS512 are)")]
    Algorithm(Algorithm),
    #[error("token key id '{0}' is not one of the configured access keys")]
    UnknownKey(String),
    #[error("token signature does not match any access key")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token audience does not match this endpoint")]
    Audience,
}

/// The identity a valid token carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    /// From `nameid`, else `sub`.
    pub user_id: Option<String>,
    /// Unregistered claims, as JSON text, to forward to the app server.
    pub claims: Vec<(String, String)>,
}

struct Key {
    id: String,
    decoding: DecodingKey,
}

/// The configured access keys.
pub struct AccessKeys {
    keys: Vec<Key>,
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.id))
            .finish()
    }
}

/// The key id derived from an access key.
pub fn key_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl AccessKeys {
    pub fn new(keys: &[String]) -> Self {
        let keys = keys
            .iter()
            .map(|k| Key {
                id: key_id(k),
                decoding: DecodingKey::from_secret(k.as_bytes()),
            })
            .collect();
        Self { keys }
    }

    /// Validates `token` for `audience` (compared case-insensitively).
    pub fn validate(&self, token: &str, audience: &str) -> Result<Identity, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(TokenError::Algorithm(header.alg));
        }
        let candidates: Vec<&Key> = match &header.kid {
            Some(kid) => {
                let key = self.keys.iter().find(|k| &k.id == kid);
                vec![key.ok_or_else(|| TokenError::UnknownKey(kid.clone()))?]
            }
            None => self.keys.iter().collect(),
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.validate_aud = false; // checked below, case-insensitively
        let mut last = TokenError::Signature;
        for key in candidates {
            match decode::<Map<String, Value>>(token, &key.decoding, &validation) {
                Ok(data) => return identity(data.claims, audience),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = match e.kind() {
                        K::ExpiredSignature => return Err(TokenError::Expired),
                        K::ImmatureSignature => return Err(TokenError::NotYetValid),
                        K::InvalidSignature => TokenError::Signature,
                        _ => TokenError::Malformed,
                    };
                }
            }
        }
        Err(last)
    }
}

fn identity(claims: Map<String, Value>, audience: &str) -> Result<Identity, TokenError> {
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => same_audience(a, audience),
        Some(Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str().is_some_and(|a| same_audience(a, audience))),
        _ => false,
    };
    if !aud_ok {
        return Err(TokenError::Audience);
    }
    let user_id = ["nameid", "sub"]
        .iter()
        .find_map(|k| claims.get(*k).and_then(Value::as_str))
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    let claims = claims
        .into_iter()
        .filter(|(k, _)| !REGISTERED.contains(&k.as_str()))
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    Ok(Identity { user_id, claims })
}

fn same_audience(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// Audience of client tokens for `hub` at `public_url`.
pub fn client_audience(public_url: &str, hub: &str) -> String {
    format!("{public_url}/client/?hub={}", hub.to_ascii_lowercase())
}

/// Audience of app-server link tokens at `public_url`.
pub fn server_audience(public_url: &str) -> String {
    format!("{public_url}/server/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const KEY: &str = "test-access-key-0123456789";
    const AUD: &str = "http://proxy.test/client/?hub=chat";

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn sign(claims: Value, key: &str, kid: Option<String>, alg: Algorithm) -> String {
        let mut header = Header::new(alg);
        header.kid = kid;
        encode(&header, &claims, &EncodingKey::from_secret(key.as_bytes())).unwrap()
    }

    fn good_claims() -> Value {
        json!({"aud": AUD, "exp": now() + 60, "nbf": now(), "iat": now(), "nameid": "alice", "role": "admin"})
    }

    fn keys() -> AccessKeys {
        AccessKeys::new(&[KEY.to_owned()])
    }

    #[test]
    fn valid_token_yields_user_and_extra_claims() {
        let t = sign(good_claims(), KEY, Some(key_id(KEY)), Algorithm::HS256);
        let id = keys().validate(&t, AUD).unwrap();
        assert_eq!(id.user_id.as_deref(), Some("alice"));
        assert_eq!(
            id.claims,
            vec![
                ("nameid".into(), "\"alice\"".into()),
                ("role".into(), "\"admin\"".into())
            ]
        );
    }

    #[test]
    fn sub_is_the_fallback_user_and_kid_is_optional() {
        let t = sign(
            json!({"aud": AUD, "exp": now() + 60, "sub": "bob"}),
            KEY,
            None,
            Algorithm::HS512,
        );
        assert_eq!(
            keys().validate(&t, AUD).unwrap().user_id.as_deref(),
            Some("bob")
        );
    }

    #[test]
    fn audience_is_case_insensitive_but_must_match_hub() {
        let t = sign(good_claims(), KEY, None, Algorithm::HS256);
        assert!(
            keys()
                .validate(&t, "http://PROXY.test/client/?hub=CHAT")
                .is_ok()
        );
        assert_eq!(
            keys().validate(&t, "http://proxy.test/client/?hub=other"),
            Err(TokenError::Audience)
        );
    }

    #[test]
    fn rejections() {
        let k = keys();
        assert_eq!(k.validate("", AUD), Err(TokenError::Missing));
        assert_eq!(k.validate("garbage", AUD), Err(TokenError::Malformed));
        let wrong_key = sign(
            good_claims(),
            "another-key-0123456789",
            None,
            Algorithm::HS256,
        );
        assert_eq!(k.validate(&wrong_key, AUD), Err(TokenError::Signature));
        let unknown_kid = sign(
            good_claims(),
            KEY,
            Some("ffffffffffffffff".into()),
            Algorithm::HS256,
        );
        assert_eq!(
            k.validate(&unknown_kid, AUD),
            Err(TokenError::UnknownKey("ffffffffffffffff".into()))
        );
        let mut c = good_claims();
        c["exp"] = json!(now() - 60);
        assert_eq!(
            k.validate(&sign(c, KEY, None, Algorithm::HS256), AUD),
            Err(TokenError::Expired)
        );
        let mut c = good_claims();
        c["nbf"] = json!(now() + 600);
        assert_eq!(
            k.validate(&sign(c, KEY, None, Algorithm::HS256), AUD),
            Err(TokenError::NotYetValid)
        );
        let mut c = good_claims();
        c.as_object_mut().unwrap().remove("exp");
        assert!(
            k.validate(&sign(c, KEY, None, Algorithm::HS256), AUD)
                .is_err()
        );
    }

    #[test]
    fn alg_none_and_asymmetric_algorithms_are_refused() {
        use base64::Engine as _;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&good_claims())
        );
        assert!(keys().validate(&none, AUD).is_err());
        // An RS256 header over an HMAC signature (algorithm confusion).
        let rs = format!(
            "{}.{}.c2ln",
            b64(&json!({"alg": "RS256", "typ": "JWT"})),
            b64(&good_claims())
        );
        assert_eq!(
            keys().validate(&rs, AUD),
            Err(TokenError::Algorithm(Algorithm::RS256))
        );
    }

    #[test]
    fn rotation_accepts_either_key() {
        let k = AccessKeys::new(&["old-key-0123456789abc".into(), KEY.into()]);
        let t = sign(good_claims(), KEY, Some(key_id(KEY)), Algorithm::HS256);
        assert!(k.validate(&t, AUD).is_ok());
        let t = sign(
            good_claims(),
            "old-key-0123456789abc",
            None,
            Algorithm::HS256,
        );
        assert!(k.validate(&t, AUD).is_ok());
    }
}
