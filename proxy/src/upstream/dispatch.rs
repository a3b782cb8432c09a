//! What the proxy does with each message an app server sends. Runs in the
//! link's span (link id and app server id), so log lines here do not repeat
//! them.

use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::{self as pb, ack::Status, proxy_message::Kind, server_message::Kind as In};

use futures_util::FutureExt as _;
use tracing::Instrument as _;

use super::Link;
use crate::Shared;
use crate::bus::{self, Answer, Outcome};
use crate::router::frames;

/// Handles one app-server message. Requests that carry an ack id are
/// answered on `link`.
pub async fn handle(shared: &Shared, link: &Arc<Link>, message: pb::ServerMessage) {
    let Some(kind) = message.kind else { return };
    let (ack_id, result) = match kind {
        In::Send(send) if send.local_only => {
            // When the node reaches its cluster, the cluster's copy reaches
            // its clients.
            let isolated = !shared.bus.readiness().borrow().ready;
            let started = std::time::Instant::now();
            let result = match isolated {
                true => bus::deliver_local(&shared.router, &send)
                    .map(|delivery| bus::record(&shared.metrics, started, delivery))
                    .map_err(|e| (Status::Error, e.to_string())),
                false => Ok(()),
            };
            (send.ack_id, result)
        }
        In::Send(send) => {
            let result = shared
                .bus
                .publish(&send)
                .map(|_| ())
                .map_err(|e| (Status::Error, e.to_string()));
            if let Err((_, e)) = &result {
                tracing::warn!(error = %e, "app server send refused");
            }
            (send.ack_id, result)
        }
        In::GroupChange(change) => {
            let ack_id = change.ack_id;
            return answer(link, ack_id, shared.bus.group_change(change)).await;
        }
        In::CloseConnection(close) => {
            let ack_id = close.ack_id;
            return answer(link, ack_id, shared.bus.close(close)).await;
        }
        In::InvocationResult(result) => {
            invocation_result(shared, result);
            return;
        }
        In::StreamItem(item) => {
            stream_item(shared, item);
            return;
        }
        In::InvokeClient(invoke) => {
            invoke_client(shared, link, invoke).await;
            return;
        }
        In::Query(query) => {
            let ack_id = query.ack_id;
            return answer(link, ack_id, shared.bus.query(query)).await;
        }
        In::Hello(_) => {
            tracing::warn!("ignoring a second Hello on a link");
            return;
        }
        In::Ping(_) => return,
    };
    acknowledge(link, ack_id, result).await;
}

async fn acknowledge(link: &Link, ack_id: u64, result: Outcome) {
    if ack_id != 0 {
        let (status, message) = match result {
            Ok(()) => (Status::Ok, String::new()),
            Err((status, message)) => (status, message),
        };
        let ack = Kind::Ack(pb::Ack {
            ack_id,
            status: status as i32,
            message,
        });
        let _ = link.send(ack).await;
    }
}

/// Acks a bus answer: at once when it is already known (this node's own
/// connections), else from a task, so waiting for another node does not
/// hold up the rest of the link.
async fn answer(link: &Arc<Link>, ack_id: u64, mut answer: Answer) {
    match (&mut answer).now_or_never() {
        Some(result) => acknowledge(link, ack_id, result).await,
        None => {
            let link = link.clone();
            // Still the link's work: it keeps the link's span.
            tokio::spawn(
                async move {
                    let result = answer.await;
                    acknowledge(&link, ack_id, result).await;
                }
                .in_current_span(),
            );
        }
    }
}

fn invocation_result(shared: &Shared, result: pb::InvocationResult) {
    let Some(handle) = shared.router.get(&result.connection) else {
        return;
    };
    // Only answer invocations the client is waiting for, once.
    let Some(took) = handle.finish_invocation(&result.invocation_id) else {
        return;
    };
    shared
        .metrics
        .invocation_seconds
        .observe(took.as_secs_f64());
    let frame = frames::completion(
        handle.protocol,
        &result.invocation_id,
        result.outcome.as_ref(),
    );
    let _ = handle.outbox.push(frame);
}

/// Default wait for a client result when the app server gives none.
const CLIENT_RESULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends an invocation with an id to one client and arranges for its
/// Completion (or a timeout) to be answered as `ClientResult`.
async fn invoke_client(shared: &Shared, link: &Arc<Link>, invoke: pb::InvokeClient) {
    let fail =
        |text: String| client_result(invoke.request_id, pb::client_result::Outcome::Error(text));
    let Some(handle) = shared.router.get(&invoke.connection) else {
        let _ = link
            .send(fail(format!(
                "Connection '{}' does not exist.",
                invoke.connection
            )))
            .await;
        return;
    };
    let Some(args) = invoke
        .arguments
        .filter(|a| frames::check_arguments(a).is_ok())
    else {
        let text = "Client result arguments must be one JSON or MessagePack array.";
        let _ = link.send(fail(text.into())).await;
        return;
    };
    let id = handle.begin_client_call(invoke.request_id, link.clone());
    let frame = match frames::invocation(handle.protocol, Some(&id), &invoke.target, &args) {
        Ok(frame) => frame,
        Err(e) => {
            handle.finish_client_call(&id);
            let _ = link
                .send(fail(format!(
                    "The arguments cannot be sent to this client: {e}"
                )))
                .await;
            return;
        }
    };
    if handle.outbox.push(frame).is_err() {
        // The connection is closing; its close answers every awaited call.
        return;
    }
    let timeout = match invoke.timeout_ms {
        0 => CLIENT_RESULT_TIMEOUT,
        ms => Duration::from_millis(u64::from(ms)),
    };
    let weak = Arc::downgrade(&handle);
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        let Some(handle) = weak.upgrade() else { return };
        if let Some((request_id, link)) = handle.finish_client_call(&id) {
            let text = format!(
                "The client did not return a result within {} ms.",
                timeout.as_millis()
            );
            let _ = link
                .send(client_result(
                    request_id,
                    pb::client_result::Outcome::Error(text),
                ))
                .await;
        }
    });
}

/// A `ClientResult` message.
pub fn client_result(request_id: u64, outcome: pb::client_result::Outcome) -> Kind {
    Kind::ClientResult(pb::ClientResult {
        request_id,
        outcome: Some(outcome),
    })
}

fn stream_item(shared: &Shared, item: pb::StreamItem) {
    let Some(handle) = shared.router.get(&item.connection) else {
        return;
    };
    let (Some(payload), true) = (item.item, handle.is_pending(&item.invocation_id)) else {
        return;
    };
    match frames::stream_item(handle.protocol, &item.invocation_id, &payload) {
        Ok(frame) => {
            let _ = handle.outbox.push(frame);
        }
        Err(e) => tracing::warn!(connection = %handle.id, error = %e, "stream item dropped"),
    }
}
