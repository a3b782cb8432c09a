//! Parsing of Switchboard connection strings
//! (`Endpoint=...;AccessKey=...;Version=1.0;ServerEndpoint=...;ServerDiscovery=...`).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Port of the proxy's upstream (app-server) listener when the connection
/// string does not name a `ServerEndpoint`.
pub const DEFAULT_SERVER_PORT: u16 = 7070;

/// The only protocol version this SDK speaks.
const SUPPORTED_VERSION: &str = "1.0";

/// How an app server finds the proxy replicas behind its server endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ServerDiscovery {
    /// One link per listed server endpoint (`ServerDiscovery=None`, the
    /// default). A host name is dialled as is, whatever it resolves to.
    #[default]
    None,
    /// Each endpoint's host name is resolved periodically and one link is
    /// kept per address (`ServerDiscovery=Dns`): a DNS name listing every
    /// replica, such as a Kubernetes headless Service, links to all of them.
    Dns,
}

/// Where the proxy is and how to authenticate to it.
///
/// `ServerEndpoint` may list several upstream URLs separated by commas, one
/// per proxy replica: the app server links to each of them. With
/// `ServerDiscovery=Dns` each listed host name is re-resolved periodically
/// and every address it resolves to gets its own link.
///
/// Keys are case-insensitive and may come in any order; a trailing `;` is
/// optional; keys this SDK does not know are ignored so connection strings
/// written for compatible services keep working.
///
/// ```
/// use switchboard_sdk::ConnectionString;
///
/// let cs = ConnectionString::parse(
///     "Endpoint=http://127.0.0.1:8080;AccessKey=secret;Version=1.0;",
/// )?;
/// assert_eq!(cs.endpoint(), "http://127.0.0.1:8080");
/// assert_eq!(cs.server_endpoint(), "http://127.0.0.1:7070");
///
/// let cs = ConnectionString::parse(
///     "Endpoint=https://chat.example;AccessKey=secret;\
///      ServerEndpoint=http://proxy-a:7070,http://proxy-b:7070",
/// )?;
/// assert_eq!(cs.server_endpoints(), ["http://proxy-a:7070", "http://proxy-b:7070"]);
/// # Ok::<(), switchboard_sdk::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    endpoint: String,
    access_key: String,
    server_endpoints: Vec<String>,
    /// False while `server_endpoints` holds only the default derived from
    /// `Endpoint`, which an explicitly added endpoint replaces.
    explicit_server_endpoints: bool,
    discovery: ServerDiscovery,
}

impl ConnectionString {
    /// Parses a connection string.
    ///
    /// `Endpoint` and `AccessKey` are required; `Version`, when present, must
    /// be `1.0`; `ServerEndpoint` (one URL or a comma-separated list)
    /// defaults to the endpoint's scheme and host with port 7070;
    /// `ServerDiscovery` is `None` (default) or `Dns`. Errors name the key at
    /// fault.
    pub fn parse(input: &str) -> Result<Self> {
        let mut endpoint = None;
        let mut access_key = None;
        let mut server_endpoint = None;
        let mut version = None;
        let mut discovery = None;
        for segment in input.split(';') {
            let segment = segment.trim();
            if segment.is_empty() {
                continue;
            }
            let Some((key, value)) = segment.split_once('=') else {
                return Err(Error::connection_string(format!(
                    "segment '{}' is not of the form Key=Value",
                    redact_segment(segment)
                )));
            };
            let key = key.trim();
            let value = value.trim();
            let slot = match key.to_ascii_lowercase().as_str() {
                "endpoint" => &mut endpoint,
                "accesskey" => &mut access_key,
                "serverendpoint" => &mut server_endpoint,
                "version" => &mut version,
                "serverdiscovery" => &mut discovery,
                _ => continue,
            };
            if slot.is_some() {
                return Err(Error::connection_string(format!(
                    "key '{key}' appears more than once"
                )));
            }
            if value.is_empty() {
                return Err(Error::connection_string(format!(
                    "key '{key}' has an empty value"
                )));
            }
            *slot = Some(value.to_owned());
        }

        let endpoint =
            endpoint.ok_or_else(|| Error::connection_string("missing required key 'Endpoint'"))?;
        let endpoint = normalize_url("Endpoint", &endpoint)?;
        let access_key = access_key
            .ok_or_else(|| Error::connection_string("missing required key 'AccessKey'"))?;
        if let Some(version) = version
            && version != SUPPORTED_VERSION
        {
            return Err(Error::connection_string(format!(
                "key 'Version' is '{version}', only '{SUPPORTED_VERSION}' is supported"
            )));
        }
        let discovery = match discovery.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("none") => ServerDiscovery::None,
            Some("dns") => ServerDiscovery::Dns,
            Some(_) => {
                return Err(Error::connection_string(format!(
                    "key 'ServerDiscovery' is '{}', expected 'None' or 'Dns'",
                    discovery.unwrap_or_default()
                )));
            }
        };
        let (server_endpoints, explicit_server_endpoints) = match server_endpoint {
            Some(list) => (parse_endpoint_list(&list)?, true),
            None => (vec![default_server_endpoint(&endpoint)], false),
        };
        Ok(Self {
            endpoint,
            access_key,
            server_endpoints,
            explicit_server_endpoints,
            discovery,
        })
    }

    /// Adds a proxy upstream URL (`http(s)://host[:port]`) to link to. When
    /// the connection string named no `ServerEndpoint`, the first one added
    /// replaces the default derived from `Endpoint`.
    pub fn with_server_endpoint(mut self, url: &str) -> Result<Self> {
        let url = normalize_url("ServerEndpoint", url.trim())?;
        if !self.explicit_server_endpoints {
            self.server_endpoints.clear();
            self.explicit_server_endpoints = true;
        }
        if self.server_endpoints.contains(&url) {
            return Err(Error::connection_string(format!(
                "server endpoint '{url}' is listed twice"
            )));
        }
        self.server_endpoints.push(url);
        Ok(self)
    }

    /// The same connection string with another discovery mode.
    pub fn with_server_discovery(mut self, discovery: ServerDiscovery) -> Self {
        self.discovery = discovery;
        self
    }

    /// The proxy's public client URL, without a trailing slash.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The first proxy upstream gRPC address, without a trailing slash.
    pub fn server_endpoint(&self) -> &str {
        &self.server_endpoints[0]
    }

    /// Every proxy upstream gRPC address, in the order given; never empty.
    pub fn server_endpoints(&self) -> &[String] {
        &self.server_endpoints
    }

    /// How replicas behind the server endpoints are found.
    pub fn server_discovery(&self) -> ServerDiscovery {
        self.discovery
    }

    /// The shared access key that signs tokens.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }
}

impl FromStr for ConnectionString {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Debug for ConnectionString {
    // The access key is a secret: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("endpoint", &self.endpoint)
            .field("access_key", &"<redacted>")
            .field("server_endpoints", &self.server_endpoints)
            .field("discovery", &self.discovery)
            .finish()
    }
}

/// A segment quoted in an error may hold the key; keep only its start.
fn redact_segment(segment: &str) -> String {
    let head: String = segment.chars().take(12).collect();
    if head.len() < segment.len() {
        format!("{head}...")
    } else {
        head
    }
}

/// Splits a comma-separated `ServerEndpoint` list and checks each URL.
fn parse_endpoint_list(list: &str) -> Result<Vec<String>> {
    let mut urls: Vec<String> = Vec::new();
    for (index, entry) in list.split(',').map(str::trim).enumerate() {
        if entry.is_empty() {
            return Err(Error::connection_string(format!(
                "key 'ServerEndpoint' has an empty entry at position {} of its comma-separated list",
                index + 1
            )));
        }
        let url = normalize_url("ServerEndpoint", entry)?;
        if urls.contains(&url) {
            return Err(Error::connection_string(format!(
                "key 'ServerEndpoint' lists '{url}' twice"
            )));
        }
        urls.push(url);
    }
    Ok(urls)
}

/// Checks an `http(s)://host[:port][/path]` URL and drops trailing slashes.
fn normalize_url(key: &str, url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            Error::connection_string(format!(
                "key '{key}' must be an http:// or https:// URL, got '{url}'"
            ))
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(Error::connection_string(format!(
            "key '{key}' has no host: '{url}'"
        )));
    }
    if let Some(port) = port_of(authority)
        && port.parse::<u16>().is_err()
    {
        return Err(Error::connection_string(format!(
            "key '{key}' has an invalid port: '{url}'"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The port part of `host:port` or `[v6]:port`, if any.
fn port_of(authority: &str) -> Option<&str> {
    match authority.rfind(']') {
        Some(end) => authority[end + 1..].strip_prefix(':'),
        None => authority.rsplit_once(':').map(|(_, port)| port),
    }
}

/// The endpoint's scheme and host with the default upstream port.
fn default_server_endpoint(endpoint: &str) -> String {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("http", endpoint));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match port_of(authority) {
        Some(port) => &authority[..authority.len() - port.len() - 1],
        None => authority,
    };
    format!("{scheme}://{host}:{DEFAULT_SERVER_PORT}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn err(input: &str) -> String {
        let err = ConnectionString::parse(input).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionString);
        err.to_string()
    }

    #[test]
    fn parses_all_keys_in_any_order_and_case() {
        let cs = ConnectionString::parse(
            "serverendpoint=http://10.0.0.1:7171/;VERSION=1.0;accessKey=a=b==;ENDPOINT=https://proxy.example/",
        )
        .unwrap();
        assert_eq!(cs.endpoint(), "https://proxy.example");
        assert_eq!(cs.access_key(), "a=b==");
        assert_eq!(cs.server_endpoint(), "http://10.0.0.1:7171");
    }

    #[test]
    fn server_endpoint_defaults_to_endpoint_host_on_7070() {
        let cs = ConnectionString::parse("Endpoint=http://127.0.0.1:8080;AccessKey=k").unwrap();
        assert_eq!(cs.server_endpoint(), "http://127.0.0.1:7070");
        let cs =
            ConnectionString::parse("Endpoint=https://proxy.example/base;AccessKey=k;").unwrap();
        assert_eq!(cs.endpoint(), "https://proxy.example/base");
        assert_eq!(cs.server_endpoint(), "https://proxy.example:7070");
        let cs = ConnectionString::parse("Endpoint=http://[::1]:8080;AccessKey=k").unwrap();
        assert_eq!(cs.server_endpoint(), "http://[::1]:7070");
    }

    #[test]
    fn tolerates_unknown_keys_and_whitespace() {
        let cs =
            ConnectionString::parse(" Endpoint = http://h:1 ; AccessKey=k ; Port=9;;").unwrap();
        assert_eq!(cs.endpoint(), "http://h:1");
        assert_eq!(cs.server_endpoint(), "http://h:7070");
    }

    #[test]
    fn errors_name_the_key_at_fault() {
        assert!(err("AccessKey=k").contains("'Endpoint'"));
        assert!(err("Endpoint=http://h").contains("'AccessKey'"));
        assert!(err("Endpoint=ftp://h;AccessKey=k").contains("'Endpoint'"));
        assert!(err("Endpoint=http://h;AccessKey=k;Version=2.0").contains("'Version'"));
        assert!(
            err("Endpoint=http://h;AccessKey=k;ServerEndpoint=grpc://h")
                .contains("'ServerEndpoint'")
        );
        assert!(err("Endpoint=http://h:99999;AccessKey=k").contains("invalid port"));
        assert!(err("Endpoint=http://h;AccessKey=").contains("'AccessKey' has an empty value"));
        assert!(err("Endpoint=http://h;endpoint=http://g;AccessKey=k").contains("more than once"));
        assert!(err("Endpoint=http://h;AccessKey=k;garbage").contains("Key=Value"));
    }

    #[test]
    fn server_endpoint_lists_and_discovery() {
        let cs = ConnectionString::parse(
            "Endpoint=http://h;AccessKey=k;ServerEndpoint= http://a:1/ , https://[::1]:2 ,http://b",
        )
        .unwrap();
        assert_eq!(
            cs.server_endpoints(),
            ["http://a:1", "https://[::1]:2", "http://b"]
        );
        assert_eq!(cs.server_endpoint(), "http://a:1");
        assert_eq!(cs.server_discovery(), ServerDiscovery::None);
        let cs = ConnectionString::parse(
            "Endpoint=http://h;AccessKey=k;ServerEndpoint=http://proxy:7070;serverdiscovery=DNS",
        )
        .unwrap();
        assert_eq!(cs.server_discovery(), ServerDiscovery::Dns);
        let cs =
            ConnectionString::parse("Endpoint=http://h;AccessKey=k;ServerDiscovery=none").unwrap();
        assert_eq!(cs.server_discovery(), ServerDiscovery::None);
    }

    #[test]
    fn server_endpoint_list_errors_say_what_is_wrong() {
        assert!(
            err("Endpoint=http://h;AccessKey=k;ServerEndpoint=http://a,,http://b")
                .contains("empty entry at position 2")
        );
        assert!(
            err("Endpoint=http://h;AccessKey=k;ServerEndpoint=http://a,")
                .contains("empty entry at position 2")
        );
        let text = err("Endpoint=http://h;AccessKey=k;ServerEndpoint=http://a,tcp://b");
        assert!(
            text.contains("'ServerEndpoint'") && text.contains("tcp://b"),
            "{text}"
        );
        assert!(
            err("Endpoint=http://h;AccessKey=k;ServerEndpoint=http://a:1,http://a:1/")
                .contains("lists 'http://a:1' twice")
        );
        assert!(
            err("Endpoint=http://h;AccessKey=k;ServerEndpoint=http://a:70000")
                .contains("invalid port")
        );
        let text = err("Endpoint=http://h;AccessKey=k;ServerDiscovery=mdns");
        assert!(
            text.contains("'ServerDiscovery'") && text.contains("'Dns'"),
            "{text}"
        );
    }

    #[test]
    fn added_endpoints_replace_only_the_default() {
        let cs = ConnectionString::parse("Endpoint=http://h:8080;AccessKey=k")
            .unwrap()
            .with_server_endpoint("http://a:7070/")
            .unwrap()
            .with_server_endpoint("http://b:7070")
            .unwrap();
        assert_eq!(cs.server_endpoints(), ["http://a:7070", "http://b:7070"]);
        let cs = ConnectionString::parse("Endpoint=http://h;AccessKey=k;ServerEndpoint=http://a")
            .unwrap()
            .with_server_endpoint("http://b")
            .unwrap();
        assert_eq!(cs.server_endpoints(), ["http://a", "http://b"]);
        let again = cs.clone().with_server_endpoint("http://b").unwrap_err();
        assert!(again.to_string().contains("twice"), "{again}");
        assert!(cs.with_server_endpoint("b:7070").is_err());
    }

    #[test]
    fn debug_hides_the_access_key() {
        let cs = ConnectionString::parse("Endpoint=http://h;AccessKey=topsecret").unwrap();
        assert!(!format!("{cs:?}").contains("topsecret"));
    }
}
