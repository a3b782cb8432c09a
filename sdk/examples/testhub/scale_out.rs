//! TestHub methods for the multi-proxy tests: sends to several groups,
//! users or connections at once, user groups, and `Record`/`Recorded`, which
//! let a client check that every invocation it saw acknowledged really ran
//! on the app server, across proxy restarts and drains.

use std::collections::HashMap;
use std::sync::LazyLock;

use parking_lot::Mutex;
use switchboard_sdk::{Context, HubBuilder, HubError};

/// Numbers passed to `Record`, per user, in the order they arrived. Lives as
/// long as the process, like the state of a real app server would.
static RECORDED: LazyLock<Mutex<HashMap<String, Vec<u64>>>> = LazyLock::new(Default::default);

fn user_of(ctx: &Context) -> String {
    ctx.user_id().unwrap_or_default().to_owned()
}

/// Adds the methods to `hub`.
pub fn methods(hub: HubBuilder) -> HubBuilder {
    hub.method(
        "SendToGroups",
        |ctx: Context, (groups, msg): (Vec<String>, String)| async move {
            ctx.clients().groups(groups).send("Receive", (msg,)).await
        },
    )
    .method(
        "SendToUsers",
        |ctx: Context, (users, msg): (Vec<String>, String)| async move {
            ctx.clients().users(users).send("Receive", (msg,)).await
        },
    )
    .method(
        "SendToConnections",
        |ctx: Context, (ids, msg): (Vec<String>, String)| async move {
            ctx.clients().clients(ids).send("Receive", (msg,)).await
        },
    )
    .method(
        "AddUserToGroup",
        |ctx: Context, (user, group): (String, String)| async move {
            ctx.groups().add_user(&user, &group).await
        },
    )
    .method(
        "RemoveUserFromGroup",
        |ctx: Context, (user, group): (String, String)| async move {
            ctx.groups().remove_user(&user, &group).await
        },
    )
    .method("Record", |ctx: Context, (n,): (u64,)| async move {
        RECORDED.lock().entry(user_of(&ctx)).or_default().push(n);
        Ok::<_, HubError>(n)
    })
    .method("Recorded", |ctx: Context, (): ()| async move {
        let recorded = RECORDED.lock().get(&user_of(&ctx)).cloned();
        Ok::<_, HubError>(recorded.unwrap_or_default())
    })
}
