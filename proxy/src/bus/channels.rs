//! Names of the Redis channels and keys of one cluster.
//!
//! Every name starts with the cluster name `P`, so clusters sharing one
//! Redis never hear each other. Hub names (`HUB`) are lower-case.
//!
//! | name | carries | a node subscribes while |
//! |---|---|---|
//! | `P:HUB:all` | hub-wide sends, multi-group and multi-user sends | it holds a connection of the hub |
//! | `P:HUB:g:GROUP` | group sends, group existence queries | it holds a member of the group |
//! | `{P:HUB:u:USER}` | user sends, user-group changes, user queries | it holds a connection of the user |
//! | `P:node:NODE` | sends to its connections, requests about them, replies | always |
//!
//! The key `{P:HUB:u:USER}:ug` (a hash: group → expiry in Unix ms, 0 for
//! none) holds the user's groups. The braces are a Redis Cluster hash tag:
//! a user's channel and key hash to the same slot whatever the names hold
//! (both begin with the same text up to the first `}`).

use crate::router::Interest;

pub fn hub(prefix: &str, hub: &str) -> String {
    format!("{prefix}:{hub}:all")
}

pub fn group(prefix: &str, hub: &str, group: &str) -> String {
    format!("{prefix}:{hub}:g:{group}")
}

pub fn user(prefix: &str, hub: &str, user: &str) -> String {
    format!("{{{prefix}:{hub}:u:{user}}}")
}

pub fn node(prefix: &str, node: &str) -> String {
    format!("{prefix}:node:{node}")
}

/// The hash of a user's groups.
pub fn user_groups(prefix: &str, hub: &str, user: &str) -> String {
    format!("{}:ug", self::user(prefix, hub, user))
}

/// The channel carrying what an [`Interest`] needs to hear.
pub fn of(prefix: &str, interest: &Interest) -> String {
    match interest {
        Interest::Hub(h) => hub(prefix, h),
        Interest::Group(h, g) => group(prefix, h, g),
        Interest::User(h, u) => user(prefix, h, u),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_start_with_the_cluster_prefix() {
        assert_eq!(hub("eu", "chat"), "eu:chat:all");
        assert_eq!(group("eu", "chat", "room 1"), "eu:chat:g:room 1");
        assert_eq!(user("eu", "chat", "ann"), "{eu:chat:u:ann}");
        assert_eq!(node("eu", "AbC123"), "eu:node:AbC123");
        assert_eq!(user_groups("eu", "chat", "ann"), "{eu:chat:u:ann}:ug");
        assert_eq!(
            of("eu", &Interest::Group("chat".into(), "g".into())),
            "eu:chat:g:g"
        );
    }
}
