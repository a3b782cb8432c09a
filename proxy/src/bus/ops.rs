//! Group changes, closes and queries applied to this node's router, whether
//! they came from a local app-server link or from another node.

use std::time::{Duration, Instant};

use switchboard_proto::{self as pb, ack::Status};

use crate::connection::close::{Close, CloseReason};
use crate::router::Router;

/// The answer to an app-server request: `Ok` or a status and its text.
pub type Outcome = Result<(), (Status, String)>;

/// A group change that passed its checks.
pub struct Checked<'a> {
    /// Lower-case hub name.
    pub hub: String,
    pub add: bool,
    pub member: Member<'a>,
}

pub enum Member<'a> {
    Connection(&'a str),
    User(&'a str),
}

/// Checks a group change names an action, a group and a member.
pub fn check_group_change(change: &pb::GroupChange) -> Result<Checked<'_>, (Status, String)> {
    use pb::group_change::{Action, Member as M};
    let add = match Action::try_from(change.action) {
        Ok(Action::Add) => true,
        Ok(Action::Remove) => false,
        _ => {
            return Err((
                Status::Error,
                "group change needs an action (ADD or REMOVE)".into(),
            ));
        }
    };
    if change.group.is_empty() {
        return Err((Status::Error, "group name must not be empty".into()));
    }
    let member = match &change.member {
        Some(M::Connection(id)) => Member::Connection(id),
        Some(M::User(user)) => Member::User(user),
        None => {
            return Err((
                Status::Error,
                "group change needs a connection or a user".into(),
            ));
        }
    };
    Ok(Checked {
        hub: change.hub.to_ascii_lowercase(),
        add,
        member,
    })
}

/// When a user-group membership of `ttl_seconds` ends (`None`: never).
pub fn ttl_deadline(ttl_seconds: u32) -> Option<Instant> {
    (ttl_seconds > 0).then(|| Instant::now() + Duration::from_secs(u64::from(ttl_seconds)))
}

/// Adds or removes a connection held by this node.
pub fn group_change_connection(router: &Router, change: &pb::GroupChange, id: &str) -> Outcome {
    let checked = check_group_change(change)?;
    let r = if checked.add {
        router.group_add(&checked.hub, &change.group, id)
    } else {
        router.group_remove(&checked.hub, &change.group, id)
    };
    r.map_err(|e| (Status::NotFound, e.to_string()))
}

pub fn not_found(connection: &str) -> (Status, String) {
    (
        Status::NotFound,
        format!("connection '{connection}' is not connected"),
    )
}

/// Closes a connection held by this node.
pub fn close(router: &Router, close: &pb::CloseConnection) -> Outcome {
    let handle = router
        .get(&close.connection)
        .ok_or_else(|| not_found(&close.connection))?;
    let error = (!close.reason.is_empty()).then(|| close.reason.clone());
    handle.outbox.close(Close::new(
        CloseReason::ClosedByServer,
        error,
        close.allow_reconnect,
    ));
    Ok(())
}

/// Whether this node holds the connection, or a member of the group, or a
/// connection of the user.
pub fn query(router: &Router, query: &pb::Query) -> Outcome {
    use pb::query::Subject;
    let hub = query.hub.to_ascii_lowercase();
    let (exists, what) = match &query.subject {
        Some(Subject::Connection(c)) => (router.has_connection(&hub, c), "connection"),
        Some(Subject::Group(g)) => (router.has_group(&hub, g), "group"),
        Some(Subject::User(u)) => (router.has_user(&hub, u), "user"),
        None => {
            return Err((
                Status::Error,
                "query needs a connection, group or user".into(),
            ));
        }
    };
    if exists {
        Ok(())
    } else {
        Err((Status::NotFound, format!("no such {what} in hub '{hub}'")))
    }
}
