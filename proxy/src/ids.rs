//! Connection ids and connection tokens.
//!
//! Both are 22 characters of unpadded base64url. The id is public (app
//! servers address connections by it) and starts with the [`NodeId`] of the
//! node that issued it, so anything holding an id knows which node holds the
//! connection; its other 16 characters are random (96 bits). The token is a
//! secret (16 random bytes) the client presents as `id=` on its transport
//! requests.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A connection's public id. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(Arc<str>);

impl ConnectionId {
    /// A fresh id issued by `node`.
    pub fn random(node: &NodeId) -> Self {
        let mut id = String::with_capacity(22);
        id.push_str(node.as_str());
        id.push_str(&random_id()[..22 - NodeId::LEN]);
        Self(id.into())
    }

    /// The node that issued this id (its first [`NodeId::LEN`] characters).
    pub fn node(&self) -> &str {
        node_of(&self.0)
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

/// The node an id names, or `""` for a string too short to be an id.
pub fn node_of(id: &str) -> &str {
    id.get(..NodeId::LEN).unwrap_or_default()
}

/// A proxy node's id: 6 random base64url characters (36 bits), chosen at
/// start. Connection ids begin with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeId(String);

impl NodeId {
    pub const LEN: usize = 6;

    pub fn random() -> Self {
        Self(random_id()[..Self::LEN].to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
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
    fn ids_are_22_url_safe_chars_distinct_and_name_their_node() {
        let node = NodeId::random();
        let a = ConnectionId::random(&node);
        let b = ConnectionId::random(&node);
        assert_eq!(a.node(), node.as_str());
        assert_eq!(node_of("abc"), "");
        assert_eq!(a.as_str().len(), 22);
        assert!(
            a.as_str()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, b);
    }
}
