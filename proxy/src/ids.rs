//! Connection ids and connection tokens.
//!
//! Both are 16 random bytes in unpadded base64url (22 characters). The id is
//! public (app servers address connections by it); the token is a secret the
//! client presents as `id=` on its transport requests.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A connection's public id. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(Arc<str>);

impl ConnectionId {
    pub fn random() -> Self {
        Self(random_id().into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for ConnectionId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ConnectionId {
    fn from(s: &str) -> Self {
        Self(s.into())
    }
}

/// 16 random bytes, base64url without padding.
pub fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_22_url_safe_chars_and_distinct() {
        let a = ConnectionId::random();
        let b = ConnectionId::random();
        assert_eq!(a.as_str().len(), 22);
        assert!(
            a.as_str()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, b);
    }
}
