//! Group membership changes, each confirmed by the proxy before returning.

use std::ops::Deref;
use std::time::Duration;

use switchboard_proto::server_message::Kind;
use switchboard_proto::{GroupChange, group_change};

use crate::context::HubContext;
use crate::error::Result;
use crate::links::combine_changes;

/// A hub's groups. Get it from [`HubContext::groups`].
///
/// Every change waits for the proxy's acknowledgement, so a send to the
/// group made afterwards reaches the new member. A connection or user the
/// proxy does not know fails with [`ErrorKind::NotFound`](crate::ErrorKind::NotFound).
///
/// A connection's membership changes go to the node holding it; a user's
/// go to every cluster of linked nodes and succeed when all of them accept
/// (a node without the user's connections saying "not found" is fine as
/// long as another accepted).
#[derive(Clone, Debug)]
pub struct Groups {
    hub: HubContext,
}

impl Groups {
    pub(crate) fn new(hub: HubContext) -> Self {
        Self { hub }
    }

    /// Adds a connection to a group.
    pub async fn add(&self, connection_id: &str, group: &str) -> Result<()> {
        let member = group_change::Member::Connection(connection_id.to_owned());
        self.change(group, member, group_change::Action::Add, 0)
            .await
    }

    /// Removes a connection from a group.
    pub async fn remove(&self, connection_id: &str, group: &str) -> Result<()> {
        let member = group_change::Member::Connection(connection_id.to_owned());
        self.change(group, member, group_change::Action::Remove, 0)
            .await
    }

    /// Adds a user to a group: every connection the user has now, and those
    /// the user opens later, until [`Groups::remove_user`].
    pub async fn add_user(&self, user_id: &str, group: &str) -> Result<()> {
        let member = group_change::Member::User(user_id.to_owned());
        self.change(group, member, group_change::Action::Add, 0)
            .await
    }

    /// Like [`Groups::add_user`], for `ttl` only (whole seconds, at least
    /// one): the membership ends by itself afterwards.
    pub async fn add_user_for(&self, user_id: &str, group: &str, ttl: Duration) -> Result<()> {
        let seconds = u32::try_from(ttl.as_secs().max(1)).unwrap_or(u32::MAX);
        let member = group_change::Member::User(user_id.to_owned());
        self.change(group, member, group_change::Action::Add, seconds)
            .await
    }

    /// Removes every connection of a user from a group.
    pub async fn remove_user(&self, user_id: &str, group: &str) -> Result<()> {
        let member = group_change::Member::User(user_id.to_owned());
        self.change(group, member, group_change::Action::Remove, 0)
            .await
    }

    async fn change(
        &self,
        group: &str,
        member: group_change::Member,
        action: group_change::Action,
        ttl_seconds: u32,
    ) -> Result<()> {
        let describe = match &member {
            group_change::Member::Connection(id) => format!("connection '{id}'"),
            group_change::Member::User(id) => format!("user '{id}'"),
        };
        let build = |ack_id| {
            Kind::GroupChange(GroupChange {
                hub: self.hub.name().to_owned(),
                group: group.to_owned(),
                member: Some(member.clone()),
                action: action as i32,
                ack_id,
                ttl_seconds,
            })
        };
        match &member {
            group_change::Member::Connection(connection) => {
                let ack = self
                    .hub
                    .links()
                    .request_for_connection(connection, build)
                    .await?;
                ack.into_result(|| describe)
            }
            group_change::Member::User(_) => {
                let replies = self.hub.links().request_everywhere(build).await?;
                combine_changes(replies, || describe.clone())
            }
        }
    }
}

/// A hub's groups as seen from one call: adds joining and leaving for the
/// caller. Derefs to [`Groups`] for the rest.
#[derive(Clone, Debug)]
pub struct CallerGroups {
    groups: Groups,
    caller: String,
}

impl CallerGroups {
    pub(crate) fn new(groups: Groups, caller: String) -> Self {
        Self { groups, caller }
    }

    /// Adds the calling connection to a group.
    pub async fn join(&self, group: &str) -> Result<()> {
        self.groups.add(&self.caller, group).await
    }

    /// Removes the calling connection from a group.
    pub async fn leave(&self, group: &str) -> Result<()> {
        self.groups.remove(&self.caller, group).await
    }
}

impl Deref for CallerGroups {
    type Target = Groups;

    fn deref(&self) -> &Groups {
        &self.groups
    }
}
