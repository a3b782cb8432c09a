//! Client data by POST (server-sent events and long polling) and the DELETE
//! that ends a long-polling connection. Answers have empty bodies.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::table::{Input, Refusal};
use super::{Request, refused, text};

/// How many messages' worth one POST may carry: clients batch what queued
/// while their previous POST was in flight (the decoder still bounds each
/// message), the same allowance a WebSocket frame gets.
const MESSAGES_PER_POST: usize = 4;

/// `POST ?id=TOKEN`: hands the body to the connection's task.
pub(super) async fn post(request: &Request, token: Option<&str>, body: Body) -> Response {
    let entry = match request.entry(token) {
        Ok(entry) => entry,
        Err(rejection) => return rejection.into_response(),
    };
    let limit = request
        .shared
        .config
        .max_message_size
        .saturating_mul(MESSAGES_PER_POST);
    let Ok(data) = axum::body::to_bytes(body, limit).await else {
        // Too large, or the client went away while sending.
        return refused(Refusal::TooLarge);
    };
    match entry.post(&data, limit) {
        // Held until a transport claims the connection.
        Ok(None) => text(StatusCode::OK, ""),
        Ok(Some(input)) => match input.send(Input::Data(data)).await {
            Ok(()) => text(StatusCode::OK, ""),
            // The connection's task ended.
            Err(_) => text(StatusCode::NOT_FOUND, ""),
        },
        Err(refusal) => refused(refusal),
    }
}

/// `DELETE ?id=TOKEN`: ends a long-polling connection; its pending poll gets 204.
pub(super) async fn delete(request: &Request, token: Option<&str>) -> Response {
    let entry = match request.entry(token) {
        Ok(entry) => entry,
        Err(rejection) => return rejection.into_response(),
    };
    match entry.delete() {
        Ok(input) => {
            if let Some(input) = input {
                // A task that already ended needs no telling.
                let _ = input.send(Input::Delete).await;
            }
            text(StatusCode::ACCEPTED, "")
        }
        Err(refusal) => refused(refusal),
    }
}
