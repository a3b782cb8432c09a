//! What a handler knows and can do: the calling connection ([`Context`]) and
//! the hub as a whole ([`HubContext`], usable outside handlers too).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use switchboard_proto::server_message::Kind;
use switchboard_proto::{CloseConnection, ConnectionOpened, Encoding, Query, query};

use crate::clients::{CallerClients, Clients};
use crate::error::{ErrorKind, Result};
use crate::groups::{CallerGroups, Groups};
use crate::links::{Links, combine_exists};

/// A handle on one hub for sending to its clients and managing its groups.
///
/// Cheap to clone. Get one from [`Server::hub`](crate::Server::hub) for use
/// in timers or HTTP handlers, or from [`Context::hub`] inside a handler.
/// Everything it sends fails with [`ErrorKind::LinkDown`](crate::ErrorKind::LinkDown)
/// while no link to a proxy is up. With several proxy nodes linked, what
/// concerns one connection goes through the link it arrived on (or to the
/// node its id names), and what concerns the whole hub goes once to each
/// cluster of nodes; see [`Server::links`](crate::Server::links).
#[derive(Clone)]
pub struct HubContext {
    inner: Arc<HubContextInner>,
}

struct HubContextInner {
    name: String,
    links: Arc<Links>,
}

impl HubContext {
    pub(crate) fn new(name: String, links: Arc<Links>) -> Self {
        Self {
            inner: Arc::new(HubContextInner { name, links }),
        }
    }

    /// The hub's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Sends to clients of this hub.
    pub fn clients(&self) -> Clients {
        Clients::new(self.clone())
    }

    /// Manages this hub's groups.
    pub fn groups(&self) -> Groups {
        Groups::new(self.clone())
    }

    /// Closes a client connection. `reason` (empty for a normal close) is
    /// shown to the client as the close error; `allow_reconnect` tells it
    /// whether to reconnect. Waits for the proxy to confirm.
    pub async fn close_connection(
        &self,
        connection_id: &str,
        reason: &str,
        allow_reconnect: bool,
    ) -> Result<()> {
        let ack = self
            .links()
            .request_for_connection(connection_id, |ack_id| {
                Kind::CloseConnection(CloseConnection {
                    connection: connection_id.to_owned(),
                    reason: reason.to_owned(),
                    allow_reconnect,
                    ack_id,
                })
            })
            .await?;
        ack.into_result(|| format!("connection '{connection_id}'"))
    }

    /// Whether the connection exists on the proxy. `false` too when no
    /// linked node can reach the node its id names.
    pub async fn connection_exists(&self, connection_id: &str) -> Result<bool> {
        let subject = query::Subject::Connection(connection_id.to_owned());
        let asked = self
            .links()
            .request_for_connection(connection_id, |ack_id| self.query_message(&subject, ack_id))
            .await;
        match asked {
            Ok(ack) => ack.exists(),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Whether the group has at least one connection (on any node).
    pub async fn group_exists(&self, group: &str) -> Result<bool> {
        self.query(query::Subject::Group(group.to_owned())).await
    }

    /// Whether the user has at least one connection (on any node).
    pub async fn user_exists(&self, user_id: &str) -> Result<bool> {
        self.query(query::Subject::User(user_id.to_owned())).await
    }

    /// Asks every cluster; yes if any says so.
    async fn query(&self, subject: query::Subject) -> Result<bool> {
        let replies = self
            .links()
            .request_everywhere(|ack_id| self.query_message(&subject, ack_id))
            .await?;
        combine_exists(replies)
    }

    fn query_message(&self, subject: &query::Subject, ack_id: u64) -> Kind {
        Kind::Query(Query {
            hub: self.name().to_owned(),
            subject: Some(subject.clone()),
            ack_id,
        })
    }

    pub(crate) fn links(&self) -> &Links {
        &self.inner.links
    }
}

impl std::fmt::Debug for HubContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubContext")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

/// A client connection as the proxy reported it.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    id: String,
    user_id: Option<String>,
    claims: HashMap<String, Value>,
    protocol: String,
    transport: String,
    remote_address: String,
    query: String,
    headers: HashMap<String, String>,
    migrated: bool,
}

impl Connection {
    pub(crate) fn from_opened(opened: ConnectionOpened) -> Self {
        let claims = opened
            .claims
            .into_iter()
            .map(|(name, json)| {
                // Claims arrive as JSON text; keep unparsable ones as strings.
                let value = serde_json::from_str(&json).unwrap_or(Value::String(json));
                (name, value)
            })
            .collect();
        Self {
            id: opened.connection,
            user_id: Some(opened.user_id).filter(|user| !user.is_empty()),
            claims,
            protocol: opened.protocol,
            transport: opened.transport,
            remote_address: opened.remote_address,
            query: opened.query,
            headers: opened.headers,
            migrated: opened.migrated,
        }
    }

    /// A connection known only by id (the proxy did not announce it); its
    /// protocol is guessed from the encoding of what it sent.
    pub(crate) fn unannounced(id: String, encoding: Encoding) -> Self {
        let protocol = match encoding {
            Encoding::Messagepack => "messagepack",
            Encoding::Json | Encoding::Unspecified => "json",
        };
        Self {
            id,
            protocol: protocol.to_owned(),
            ..Self::default()
        }
    }

    /// The encoding this client reads natively; answers use it so the
    /// proxy need not convert them.
    pub(crate) fn encoding(&self) -> Encoding {
        if self.protocol.eq_ignore_ascii_case("messagepack") {
            Encoding::Messagepack
        } else {
            Encoding::Json
        }
    }

    /// The connection id, used to address this connection.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The user id from the access token, if the client is not anonymous.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// Claims from the access token other than the registered ones.
    pub fn claims(&self) -> &HashMap<String, Value> {
        &self.claims
    }

    /// The hub protocol: `json` or `messagepack`.
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// The transport: `WebSockets`, `ServerSentEvents` or `LongPolling`.
    pub fn transport(&self) -> &str {
        &self.transport
    }

    /// The client's address as the proxy saw it.
    pub fn remote_address(&self) -> &str {
        &self.remote_address
    }

    /// The query string of the client's connect request, without tokens.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// Selected request headers (lower-case names).
    pub fn headers(&self) -> &HashMap<String, String> {
        &self.headers
    }

    /// True when the connection was moved here from an app server that went
    /// away; its group memberships were kept.
    pub fn migrated(&self) -> bool {
        self.migrated
    }
}

/// Why a connection ended, given to the disconnect handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// A short reason from a fixed vocabulary, e.g. `normal`,
    /// `ping timeout`, `closed by server`, or `link lost` when this app
    /// server's link to the proxy dropped.
    pub reason: String,
    /// The error text when the connection ended with an error.
    pub error: Option<String>,
}

impl Disconnect {
    /// The disconnect reported for connections of a lost link.
    pub(crate) fn link_lost() -> Self {
        Self {
            reason: "link lost".into(),
            error: None,
        }
    }
}

/// Everything a handler knows about the call: the calling connection and
/// its hub.
#[derive(Clone, Debug)]
pub struct Context {
    hub: HubContext,
    connection: Arc<Connection>,
}

impl Context {
    pub(crate) fn new(hub: HubContext, connection: Arc<Connection>) -> Self {
        Self { hub, connection }
    }

    /// The calling connection's id.
    pub fn connection_id(&self) -> &str {
        self.connection.id()
    }

    /// The calling user's id, if not anonymous.
    pub fn user_id(&self) -> Option<&str> {
        self.connection.user_id()
    }

    /// The calling connection's token claims.
    pub fn claims(&self) -> &HashMap<String, Value> {
        self.connection.claims()
    }

    /// The hub's name.
    pub fn hub_name(&self) -> &str {
        self.hub.name()
    }

    /// The calling client's encoding, for results and stream items.
    pub(crate) fn encoding(&self) -> Encoding {
        self.connection.encoding()
    }

    /// Everything known about the calling connection.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The hub, for use beyond this call (cloneable).
    pub fn hub(&self) -> &HubContext {
        &self.hub
    }

    /// Sends to clients, including the caller-relative audiences.
    pub fn clients(&self) -> CallerClients {
        CallerClients::new(self.hub.clients(), self.connection.id.clone())
    }

    /// Manages groups, including the caller's own memberships.
    pub fn groups(&self) -> CallerGroups {
        CallerGroups::new(self.hub.groups(), self.connection.id.clone())
    }

    /// Closes the calling connection (see [`HubContext::close_connection`]).
    pub async fn close(&self, reason: &str, allow_reconnect: bool) -> Result<()> {
        self.hub
            .close_connection(self.connection_id(), reason, allow_reconnect)
            .await
    }
}
