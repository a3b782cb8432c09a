//! The negotiate steps: the app server's redirect, then the proxy's
//! connection ids, and the URLs built from them.

use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ClientError;

/// The app server's negotiate answer: where the client goes and with which token.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redirect {
    /// The hub's client URL at the proxy, `{endpoint}/client/?hub={hub}`.
    pub url: String,
    /// The client access token for that URL.
    pub access_token: String,
}

/// The proxy's negotiate answer (version 1).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Negotiation {
    /// The public id other clients and app servers address the connection by.
    pub connection_id: String,
    /// The secret the transport request carries in `id=`.
    #[serde(default)]
    pub connection_token: Option<String>,
    /// The negotiate version the proxy answered with.
    #[serde(default)]
    pub negotiate_version: u32,
    /// Transports and their formats, as sent.
    #[serde(default)]
    pub available_transports: Vec<Value>,
}

impl Negotiation {
    /// What goes into the transport URL's `id=`: the token in version 1, the id in version 0.
    pub fn id_for_transport(&self) -> &str {
        self.connection_token
            .as_deref()
            .unwrap_or(&self.connection_id)
    }
}

/// `POST {app_url}/{hub}/negotiate?negotiateVersion=1[&user=U]` at an app
/// server; the sdk's negotiate route answers with a [`Redirect`].
pub async fn redirect_from_app(
    http: &reqwest::Client,
    app_url: &str,
    hub: &str,
    user: Option<&str>,
) -> Result<Redirect, ClientError> {
    let mut url = parse(&format!("{app_url}/{hub}/negotiate"))?;
    if let Some(user) = user {
        url.query_pairs_mut().append_pair("user", user);
    }
    url.query_pairs_mut().append_pair("negotiateVersion", "1");
    post_json(http, url, None).await
}

/// The negotiate URL for a client URL: `/negotiate` appended to its path,
/// its query kept, `negotiateVersion=1` added.
pub fn negotiate_url(client_url: &str) -> Result<Url, ClientError> {
    let mut url = parse(client_url)?;
    let path = format!("{}/negotiate", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.query_pairs_mut().append_pair("negotiateVersion", "1");
    Ok(url)
}

/// Negotiates at the proxy for `client_url`, with `Authorization: Bearer`
/// when a token is given. Any status but 200 is a [`ClientError::Status`].
pub async fn negotiate_at_proxy(
    http: &reqwest::Client,
    client_url: &str,
    access_token: Option<&str>,
) -> Result<Negotiation, ClientError> {
    post_json(http, negotiate_url(client_url)?, access_token).await
}

/// The WebSocket URL for a client URL: `ws` scheme, its query kept, `id=`
/// added when given (without it the proxy creates the connection directly).
pub fn websocket_url(client_url: &str, id: Option<&str>) -> Result<Url, ClientError> {
    let mut url = parse(client_url)?;
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme).map_err(|()| {
        ClientError::Url(client_url.to_owned(), format!("cannot use scheme {scheme}"))
    })?;
    if let Some(id) = id {
        url.query_pairs_mut().append_pair("id", id);
    }
    Ok(url)
}

async fn post_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: Url,
    access_token: Option<&str>,
) -> Result<T, ClientError> {
    let mut request = http.post(url.clone());
    if let Some(token) = access_token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    let body = response.text().await?;
    if status != reqwest::StatusCode::OK {
        return Err(ClientError::Status {
            method: "POST",
            url: url.into(),
            status: status.as_u16(),
            body,
        });
    }
    serde_json::from_str(&body)
        .map_err(|error| ClientError::Protocol(format!("POST {url} answered {body:?}: {error}")))
}

fn parse(url: &str) -> Result<Url, ClientError> {
    Url::parse(url).map_err(|error| ClientError::Url(url.to_owned(), error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate_url_keeps_the_hub_query() {
        let url = negotiate_url("http://127.0.0.1:8080/client/?hub=testhub").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/client/negotiate?hub=testhub&negotiateVersion=1"
        );
    }

    #[test]
    fn websocket_url_switches_scheme_and_adds_the_id() {
        let url =
            websocket_url("http://127.0.0.1:8080/client/?hub=testhub", Some("a+b/c")).unwrap();
        assert_eq!(
            url.as_str(),
            "ws://127.0.0.1:8080/client/?hub=testhub&id=a%2Bb%2Fc"
        );
    }

    #[test]
    fn version_zero_uses_the_connection_id() {
        let negotiation: Negotiation = serde_json::from_str(r#"{"connectionId":"abc"}"#).unwrap();
        assert_eq!(negotiation.id_for_transport(), "abc");
    }
}
