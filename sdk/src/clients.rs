//! Choosing which clients receive a message (all, a connection, a group, a
//! user, minus exclusions) and sending it.

use std::ops::Deref;

use bytes::Bytes;
use serde::Serialize;
use switchboard_proto::server_message::Kind;
use switchboard_proto::{All, Audience, IdList, Payload, Send, audience::Target};

use crate::context::HubContext;
use crate::error::{Error, Result};

/// The audiences of a hub. Get it from [`HubContext::clients`].
#[derive(Clone, Debug)]
pub struct Clients {
    hub: HubContext,
}

impl Clients {
    pub(crate) fn new(hub: HubContext) -> Self {
        Self { hub }
    }

    /// Every connection of the hub.
    pub fn all(&self) -> ClientProxy {
        self.proxy(Target::All(All {}))
    }

    /// Every connection of the hub except these.
    pub fn all_except<I, S>(&self, excluded: I) -> ClientProxy
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.all().except(excluded)
    }

    /// One connection.
    pub fn client(&self, connection_id: impl Into<String>) -> ClientProxy {
        self.proxy(Target::Connection(connection_id.into()))
    }

    /// Several connections.
    pub fn clients<I, S>(&self, connection_ids: I) -> ClientProxy
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.proxy(Target::Connections(id_list(connection_ids)))
    }

    /// Every member of a group.
    pub fn group(&self, group: impl Into<String>) -> ClientProxy {
        self.proxy(Target::Group(group.into()))
    }

    /// Every member of any of these groups, each connection once.
    pub fn groups<I, S>(&self, groups: I) -> ClientProxy
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.proxy(Target::Groups(id_list(groups)))
    }

    /// Every member of a group except these connections.
    pub fn group_except<I, S>(&self, group: impl Into<String>, excluded: I) -> ClientProxy
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.group(group).except(excluded)
    }

    /// Every connection of a user.
    pub fn user(&self, user_id: impl Into<String>) -> ClientProxy {
        self.proxy(Target::User(user_id.into()))
    }

    /// Every connection of any of these users.
    pub fn users<I, S>(&self, user_ids: I) -> ClientProxy
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.proxy(Target::Users(id_list(user_ids)))
    }

    fn proxy(&self, target: Target) -> ClientProxy {
        ClientProxy {
            hub: self.hub.clone(),
            target,
            excluded: Vec::new(),
        }
    }
}

/// The audiences of a hub as seen from one call: adds the caller-relative
/// ones. Derefs to [`Clients`] for the rest.
#[derive(Clone, Debug)]
pub struct CallerClients {
    clients: Clients,
    caller: String,
}

impl CallerClients {
    pub(crate) fn new(clients: Clients, caller: String) -> Self {
        Self { clients, caller }
    }

    /// The calling connection.
    pub fn caller(&self) -> ClientProxy {
        self.clients.client(self.caller.clone())
    }

    /// Every connection of the hub except the caller.
    pub fn others(&self) -> ClientProxy {
        self.clients.all_except([self.caller.clone()])
    }

    /// Every member of a group except the caller.
    pub fn others_in_group(&self, group: impl Into<String>) -> ClientProxy {
        self.clients.group_except(group, [self.caller.clone()])
    }
}

impl Deref for CallerClients {
    type Target = Clients;

    fn deref(&self) -> &Clients {
        &self.clients
    }
}

/// A chosen audience; [`ClientProxy::send`] invokes a client method on it.
#[derive(Clone, Debug)]
pub struct ClientProxy {
    hub: HubContext,
    target: Target,
    excluded: Vec<String>,
}

impl ClientProxy {
    /// Leaves these connections out.
    pub fn except<I, S>(mut self, excluded: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.excluded.extend(excluded.into_iter().map(Into::into));
        self
    }

    /// Invokes `target` on every client of the audience with `args`, which
    /// must serialize to an array: a tuple such as `(user, text)`, a `Vec`,
    /// or `()` for no arguments. Fire-and-forget: returns once the message is
    /// queued on the link, and fails when the link is down.
    pub async fn send(&self, target: &str, args: impl Serialize) -> Result<()> {
        let arguments = encode_arguments(&args)?;
        let send = Send {
            hub: self.hub.name().to_owned(),
            audience: Some(Audience {
                target: Some(self.target.clone()),
            }),
            excluded: self.excluded.clone(),
            target: target.to_owned(),
            arguments: Some(Payload::json(arguments)),
            ack_id: 0,
        };
        self.hub.outbox().send(Kind::Send(send)).await
    }
}

fn id_list<I, S>(ids: I) -> IdList
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    IdList {
        ids: ids.into_iter().map(Into::into).collect(),
    }
}

/// Encodes client-method arguments as one JSON array.
pub(crate) fn encode_arguments(args: &impl Serialize) -> Result<Bytes> {
    let json = serde_json::to_vec(args).map_err(Error::encode)?;
    match json.first() {
        Some(b'[') => Ok(json.into()),
        // `()` serializes as null: no arguments.
        _ if json == b"null" => Ok(Bytes::from_static(b"[]")),
        _ => Err(Error::encode(
            "client method arguments must serialize to an array, e.g. a tuple",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_one_json_array() {
        assert_eq!(encode_arguments(&("a", 1)).unwrap(), "[\"a\",1]");
        assert_eq!(encode_arguments(&("only",)).unwrap(), "[\"only\"]");
        assert_eq!(encode_arguments(&()).unwrap(), "[]");
        assert_eq!(encode_arguments(&vec![1, 2]).unwrap(), "[1,2]");
        assert!(encode_arguments(&"bare").is_err());
    }
}
