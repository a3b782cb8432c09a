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
