//! The error texts of the reference SignalR server, which clients and tests
//! match on.

pub(crate) fn method_does_not_exist(method: &str) -> String {
    format!(
        "Failed to invoke '{method}' due to an error on the server. HubException: Method does not exist."
    )
}

pub(crate) fn wrong_count(method: &str, provided: usize, expected: usize) -> String {
    format!(
        "Failed to invoke '{method}' due to an error on the server. InvalidDataException: Invocation provides {provided} argument(s) but target expects {expected}."
    )
}

pub(crate) fn binding_failed(method: &str) -> String {
    format!(
        "Failed to invoke '{method}' due to an error on the server. InvalidDataException: Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked."
    )
}

pub(crate) fn hub_error(method: &str, message: &str) -> String {
    format!(
        "An unexpected error occurred invoking '{method}' on the server. HubException: {message}"
    )
}

pub(crate) fn unexpected(method: &str) -> String {
    format!("An unexpected error occurred invoking '{method}' on the server.")
}

pub(crate) fn streaming_mismatch(method: &str) -> String {
    format!(
        "The client attempted to invoke the non-streaming '{method}' method with a streaming invocation."
    )
}

pub(crate) fn non_streaming_invocation(method: &str) -> String {
    format!(
        "The client attempted to invoke the streaming '{method}' method with a non-streaming invocation."
    )
}

pub(crate) fn stream_count(method: &str, provided: usize, expected: usize) -> String {
    hub_error(
        method,
        &format!("Client sent {provided} stream(s), Hub method expects {expected}."),
    )
}

pub(crate) fn streaming_failed() -> String {
    "An error occurred on the server while streaming results.".to_owned()
}

pub(crate) fn streaming_hub_error(message: &str) -> String {
    format!("An error occurred on the server while streaming results. HubException: {message}")
}

pub(crate) fn invocation_id_in_use(invocation_id: &str) -> String {
    format!("Invocation ID '{invocation_id}' is already in use.")
}
