//! One link session: dial, authenticate, `Hello` / `Welcome`, then hand
//! every proxy message to the dispatcher until the stream ends.

use std::time::Duration;

use switchboard_proto::server_message::Kind;
use switchboard_proto::upstream_client::UpstreamClient;
use switchboard_proto::{Hello, ProxyFrame, ServerMessage, Welcome, proxy_message};
use tokio::sync::{mpsc, watch};
use tonic::Streaming;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use super::{Link, outbox, stopped};
use crate::token;

/// The contract revision this SDK speaks.
const PROTOCOL_VERSION: u32 = 1;
/// HTTP/2 pings find a dead proxy even when nothing is sent.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a session ended.
pub(super) enum Ended {
    /// Shutdown was requested.
    Shutdown,
    /// The session never became ready.
    Failed(SessionError),
    /// A ready session dropped.
    Lost(SessionError),
}

#[derive(Debug, thiserror::Error)]
pub(super) enum SessionError {
    #[error("invalid server endpoint: {}", chain(.0))]
    Endpoint(tonic::transport::Error),
    #[error("cannot use the host of '{0}' as the request's authority")]
    Origin(String),
    #[error("cannot connect: {}", chain(.0))]
    Connect(tonic::transport::Error),
    #[error("cannot mint the link token: {0}")]
    Token(#[source] crate::Error),
    #[error("the proxy refused the link: {}: {}", .0.code(), .0.message())]
    Refused(tonic::Status),
    #[error("the link stream failed: {}: {}", .0.code(), .0.message())]
    Stream(tonic::Status),
    #[error("the proxy closed the link")]
    Closed,
    #[error("no Welcome from the proxy within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("the proxy's first message was not Welcome")]
    NoWelcome,
}

/// An error with its causes, since transport errors say little on their own
/// ("transport error") and keep the useful part in their sources.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `scheme://authority` of a URL.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    format!("{scheme}://{authority}")
}

/// TLS for an `https://` endpoint: the certificate must name the
/// endpoint's host (also when dialling one of its resolved addresses) and
/// chain to the configured CA, else to the system's roots.
fn tls_config(tls: &super::TlsSettings, endpoint: &str) -> ClientTlsConfig {
    let authority = origin_of(endpoint);
    let authority = authority.split_once("://").map_or("", |(_, a)| a);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut config = ClientTlsConfig::new().domain_name(host);
    config = match &tls.ca {
        Some(pem) => config.ca_certificate(Certificate::from_pem(pem)),
        None => config.with_native_roots(),
    };
    if let Some((cert, key)) = &tls.identity {
        config = config.identity(Identity::from_pem(cert, key));
    }
    config
}

/// Runs one session to its end.
pub(super) async fn run(link: &Link, shutdown: &mut watch::Receiver<bool>) -> Ended {
    let established = tokio::select! {
        result = establish(link) => result,
        () = stopped(shutdown) => return Ended::Shutdown,
    };
    let (mut inbound, sender, welcome, rest) = match established {
        Ok(parts) => parts,
        Err(error) => return Ended::Failed(error),
    };
    link.peer.outbox.attach(sender);
    tracing::info!(
        node = %welcome.node_id,
        cluster = %welcome.cluster,
        address = %link.peer.target.address,
        hubs = ?welcome.hubs,
        server_id = %link.server_id,
        "linked to the proxy"
    );
    link.peer.welcomed(welcome.node_id, welcome.cluster);
    link.links.refresh();
    for kind in rest {
        link.dispatcher.handle(&link.peer, kind);
    }
    tokio::select! {
        error = pump(link, &mut inbound) => return Ended::Lost(error),
        () = stopped(shutdown) => {}
    }
    // Shutting down: keep serving (acknowledgements especially) while the
    // running handlers finish, so their results reach the proxy.
    let grace = link.settings.shutdown_grace;
    tokio::select! {
        idle = link.dispatcher.wait_idle(grace) => {
            if !idle {
                tracing::warn!(?grace, "handlers still running at shutdown");
            }
        }
        _ = pump(link, &mut inbound) => {}
    }
    Ended::Shutdown
}

/// Hands every proxy message to the dispatcher until the stream ends.
async fn pump(link: &Link, inbound: &mut Streaming<ProxyFrame>) -> SessionError {
    loop {
        match inbound.message().await {
            Ok(Some(frame)) => {
                for kind in frame.messages.into_iter().filter_map(|m| m.kind) {
                    link.dispatcher.handle(&link.peer, kind);
                }
            }
            Ok(None) => return SessionError::Closed,
            Err(status) => return SessionError::Stream(status),
        }
    }
}

type Established = (
    Streaming<ProxyFrame>,
    mpsc::Sender<ServerMessage>,
    Welcome,
    Vec<proxy_message::Kind>,
);

/// Dials the proxy and completes the Hello/Welcome exchange.
async fn establish(link: &Link) -> Result<Established, SessionError> {
    let settings = &link.settings;
    let target = &link.peer.target;
    let mut endpoint =
        Endpoint::from_shared(target.address.clone()).map_err(SessionError::Endpoint)?;
    if target.address.starts_with("https://") {
        endpoint = endpoint
            .tls_config(tls_config(&settings.tls, &target.endpoint))
            .map_err(SessionError::Endpoint)?;
    }
    if target.address != target.endpoint {
        // Dialling a resolved address: the request still names the host.
        let origin = origin_of(&target.endpoint)
            .parse()
            .map_err(|_| SessionError::Origin(target.endpoint.clone()))?;
        endpoint = endpoint.origin(origin);
    }
    let endpoint = endpoint
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    let channel = endpoint.connect().await.map_err(SessionError::Connect)?;
    let mut client = UpstreamClient::new(channel);

    // A fresh token per attempt: the previous one may have expired.
    let token = token::link_token(&link.conn, &link.server_id).map_err(SessionError::Token)?;
    let (sender, receiver) = mpsc::channel(settings.queue_capacity.max(1));
    let hello = Kind::Hello(Hello {
        server_id: link.server_id.clone(),
        hubs: link.dispatcher.hub_names(),
        protocol_version: PROTOCOL_VERSION,
    });
    sender
        .try_send(ServerMessage { kind: Some(hello) })
        .map_err(|_| SessionError::Closed)?;
    let mut request = tonic::Request::new(outbox::frames(receiver));
    let bearer = MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| SessionError::Token(crate::Error::encode("token is not valid metadata")))?;
    request.metadata_mut().insert("authorization", bearer);

    let handshake = async {
        let mut inbound = client
            .link(request)
            .await
            .map_err(SessionError::Refused)?
            .into_inner();
        let first = inbound
            .message()
            .await
            .map_err(SessionError::Refused)?
            .ok_or(SessionError::Closed)?;
        let mut kinds = first.messages.into_iter().filter_map(|m| m.kind);
        match kinds.next() {
            Some(proxy_message::Kind::Welcome(welcome)) => Ok((inbound, welcome, kinds.collect())),
            _ => Err(SessionError::NoWelcome),
        }
    };
    let (inbound, welcome, rest) = tokio::time::timeout(settings.handshake_timeout, handshake)
        .await
        .map_err(|_| SessionError::HandshakeTimeout(settings.handshake_timeout))??;
    Ok((inbound, sender, welcome, rest))
}
