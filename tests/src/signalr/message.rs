//! Hub messages of the JSON protocol: parsing what the server sends and
//! encoding what a client sends.

use serde_json::{Value, json};

use super::ClientError;

/// Ends every JSON record.
pub const RECORD_SEPARATOR: char = '\u{1e}';

/// A message received from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Type 1: the server calls a client method.
    Invocation {
        /// Set when the server waits for a result.
        invocation_id: Option<String>,
        /// The client method.
        target: String,
        /// Its arguments.
        arguments: Vec<Value>,
    },
    /// Type 3: the answer to an invocation.
    Completion(Completion),
    /// Type 6: keep-alive.
    Ping,
    /// Type 7: the server closes the connection.
    Close {
        /// Why, if it was an error.
        error: Option<String>,
        /// Whether the client may reconnect.
        allow_reconnect: bool,
    },
    /// Any other record, as sent.
    Other(Value),
}

/// The answer to an invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The invocation it answers.
    pub invocation_id: String,
    /// `Some` when the record had a `result` field (even `null`); `None` for void.
    pub result: Option<Value>,
    /// The error text when the invocation failed.
    pub error: Option<String>,
}

impl Completion {
    /// The result (`None` for a void method), or the hub error as [`ClientError::Hub`].
    pub fn into_result(self) -> Result<Option<Value>, ClientError> {
        match self.error {
            Some(error) => Err(ClientError::Hub(error)),
            None => Ok(self.result),
        }
    }
}

impl Message {
    /// Parses one record (without its separator).
    pub fn parse(record: &[u8]) -> Result<Self, ClientError> {
        let value: Value = serde_json::from_slice(record).map_err(|error| {
            ClientError::Protocol(format!(
                "{error} in record {:?}",
                String::from_utf8_lossy(record)
            ))
        })?;
        let text = |field: &str| value.get(field).and_then(Value::as_str).map(str::to_owned);
        let message = match value.get("type").and_then(Value::as_u64) {
            Some(1) => Self::Invocation {
                invocation_id: text("invocationId"),
                target: text("target").ok_or_else(|| missing("target", &value))?,
                arguments: value
                    .get("arguments")
                    .and_then(Value::as_array)
                    .cloned()
                    .ok_or_else(|| missing("arguments", &value))?,
            },
            Some(3) => Self::Completion(Completion {
                invocation_id: text("invocationId")
                    .ok_or_else(|| missing("invocationId", &value))?,
                result: value.get("result").cloned(),
                error: text("error"),
            }),
            Some(6) => Self::Ping,
            Some(7) => Self::Close {
                error: text("error"),
                allow_reconnect: value
                    .get("allowReconnect")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            },
            Some(_) => Self::Other(value),
            None => return Err(missing("type", &value)),
        };
        Ok(message)
    }

    /// A short description for error messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Invocation {
                target, arguments, ..
            } => {
                let arguments = Value::Array(arguments.clone());
                format!(
                    "invocation of {target} with {}",
                    abbreviate(&arguments.to_string())
                )
            }
            Self::Completion(completion) => format!("{completion:?}"),
            Self::Ping => "ping".into(),
            Self::Close {
                error,
                allow_reconnect,
            } => {
                format!("close (error {error:?}, allowReconnect {allow_reconnect})")
            }
            Self::Other(value) => abbreviate(&value.to_string()),
        }
    }
}

/// An Invocation record (type 1) with its separator; no `invocationId` when
/// `invocation_id` is `None` (the server then sends no completion).
pub fn invocation_record(invocation_id: Option<&str>, target: &str, arguments: &Value) -> String {
    let mut record = match invocation_id {
        Some(id) => {
            json!({"type": 1, "invocationId": id, "target": target, "arguments": arguments})
        }
        None => json!({"type": 1, "target": target, "arguments": arguments}),
    }
    .to_string();
    record.push(RECORD_SEPARATOR);
    record
}

fn missing(field: &str, record: &Value) -> ClientError {
    ClientError::Protocol(format!(
        "no valid {field:?} in {}",
        abbreviate(&record.to_string())
    ))
}

fn abbreviate(text: &str) -> String {
    const LIMIT: usize = 200;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_tell_void_from_null() {
        let void = Message::parse(br#"{"type":3,"invocationId":"1"}"#).unwrap();
        let null = Message::parse(br#"{"type":3,"invocationId":"2","result":null}"#).unwrap();
        let Message::Completion(void) = void else {
            panic!("{void:?}")
        };
        let Message::Completion(null) = null else {
            panic!("{null:?}")
        };
        assert_eq!(void.into_result().unwrap(), None);
        assert_eq!(null.into_result().unwrap(), Some(Value::Null));
    }

    #[test]
    fn close_defaults_to_no_reconnect() {
        assert_eq!(
            Message::parse(br#"{"type":7,"error":"bye"}"#).unwrap(),
            Message::Close {
                error: Some("bye".into()),
                allow_reconnect: false
            }
        );
    }

    #[test]
    fn records_without_type_are_rejected() {
        assert!(matches!(
            Message::parse(b"{}"),
            Err(ClientError::Protocol(_))
        ));
    }

    #[test]
    fn invocation_records_omit_a_missing_id() {
        let record = invocation_record(None, "Echo", &json!(["x"]));
        let value: Value = serde_json::from_str(record.trim_end_matches(RECORD_SEPARATOR)).unwrap();
        assert_eq!(
            value,
            json!({"type": 1, "target": "Echo", "arguments": ["x"]})
        );
        assert!(record.ends_with(RECORD_SEPARATOR));
    }
}
