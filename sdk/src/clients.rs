//! Choosing which clients receive a message (all, a connection, a group, a
//! user, minus exclusions) and sending it.

use std::ops::Deref;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchboard_proto::{All, Audience, IdList, Payload, Send, audience::Target, client_result};

use crate::context::HubContext;
use crate::error::{Error, Repr, Result};
use crate::hub::encoding::decode;

/// How long [`SingleClientProxy::invoke`] waits for the client's answer.
pub const DEFAULT_CLIENT_RESULT_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// One connection; besides sending, it can be invoked for a result.
    pub fn client(&self, connection_id: impl Into<String>) -> SingleClientProxy {
        let connection = connection_id.into();
        SingleClientProxy {
            proxy: self.proxy(Target::Connection(connection.clone())),
            connection,
        }
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
    pub fn caller(&self) -> SingleClientProxy {
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
    /// queued on the link(s), and fails when no link that can carry it is up.
    ///
    /// With several proxy nodes linked: a send to one connection goes to
    /// the node holding it (failing with
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when no link
    /// reaches that node), anything else once to each cluster of nodes.
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
            local_only: false,
        };
        self.hub.links().send(send).await
    }
}

/// One connection: send to it like any audience (it derefs to
/// [`ClientProxy`]), or invoke one of its methods and wait for the value it
/// returns (client results).
#[derive(Clone, Debug)]
pub struct SingleClientProxy {
    proxy: ClientProxy,
    connection: String,
}

impl SingleClientProxy {
    /// Invokes `target` on this client and waits for its return value,
    /// decoded as `R`, for at most [`DEFAULT_CLIENT_RESULT_TIMEOUT`].
    /// `args` serializes to an array, as for [`ClientProxy::send`].
    ///
    /// Fails with [`ErrorKind::Client`](crate::ErrorKind::Client) when the
    /// client answered with an error, has no handler for `target`, or
    /// disconnected; [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) when
    /// it did not answer in time; [`ErrorKind::Decode`](crate::ErrorKind::Decode)
    /// when its value is not an `R` (a client method returning nothing
    /// decodes as `()` or `None`).
    pub async fn invoke<R: DeserializeOwned>(
        &self,
        target: &str,
        args: impl Serialize,
    ) -> Result<R> {
        self.invoke_with_timeout(target, args, DEFAULT_CLIENT_RESULT_TIMEOUT)
            .await
    }

    /// [`invoke`](Self::invoke) with its own timeout.
    pub async fn invoke_with_timeout<R: DeserializeOwned>(
        &self,
        target: &str,
        args: impl Serialize,
        timeout: Duration,
    ) -> Result<R> {
        let arguments = Payload::json(encode_arguments(&args)?);
        let outcome = self
            .proxy
            .hub
            .links()
            .invoke_client(&self.connection, target, arguments, timeout)
            .await?;
        match outcome {
            client_result::Outcome::Value(payload) => {
                decode(&payload).map_err(|err| Repr::Decode(err).into())
            }
            client_result::Outcome::Void(_) => R::deserialize(serde_json::Value::Null)
                .map_err(|err| Repr::Decode(err.to_string()).into()),
            client_result::Outcome::Error(text) => Err(Repr::Client(text).into()),
        }
    }
}

impl Deref for SingleClientProxy {
    type Target = ClientProxy;

    fn deref(&self) -> &ClientProxy {
        &self.proxy
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
