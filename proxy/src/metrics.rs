//! Prometheus metrics, served in text format on the admin port at `/metrics`.
//!
//! Labels are bounded: hub names (only hubs some app server serves can have
//! connections), transports, protocols and close reasons from fixed
//! vocabularies. Never connection or user ids.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a connection.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub hub: String,
    pub transport: &'static str,
    pub protocol: &'static str,
}

/// Labels of a closed connection.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    pub hub: String,
    pub reason: &'static str,
}

/// Labels of a refused client request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub reason: &'static str,
}

/// Labels of per-hub figures.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HubLabels {
    pub hub: String,
}

/// Labels of a failed TLS handshake: the port (`client`, `upstream`) and
/// whether the peer failed the handshake (`error`) or never finished it
/// (`timeout`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsHandshakeLabels {
    pub port: &'static str,
    pub reason: &'static str,
}

/// Labels of a TLS reload attempt: the port and `ok` or `error`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsReloadLabels {
    pub port: &'static str,
    pub result: &'static str,
}

/// Every metric the proxy exports.
pub struct Metrics {
    registry: Registry,
    /// Connections open now.
    pub connections: Family<ConnectionLabels, Gauge>,
    /// Connections that completed their handshake.
    pub connections_opened: Family<ConnectionLabels, Counter>,
    /// Connections that ended, by reason.
    pub connections_closed: Family<CloseLabels, Counter>,
    /// Client requests (negotiate, connect, send, poll) answered with an
    /// error status, by reason.
    pub requests_refused: Family<RefusedLabels, Counter>,
    /// Hub messages received from clients.
    pub messages_received: Counter,
    /// Bytes received from clients (hub protocol payload).
    pub bytes_received: Counter,
    /// Hub messages written to clients (counted per drained batch).
    pub messages_sent: Counter,
    /// Bytes written to clients (hub protocol payload, before transport framing).
    pub bytes_sent: Counter,
    /// Stateful-reconnect resumes: a dropped socket replaced by a reconnect
    /// that picked up where it left off.
    pub stateful_resumes: Counter,
    /// Stateful-reconnect connections whose socket dropped and that no
    /// reconnect resumed within the disconnect timeout.
    pub stateful_expiries: Counter,
    /// Frames queued for clients by app-server sends.
    pub fanout_deliveries: Counter,
    /// Time to queue one send for every local target.
    pub fanout_seconds: Histogram,
    /// Clients closed because their outbox filled (slow consumers).
    pub outbox_overflows: Counter,
    /// Sends whose payload could not be expressed in a target's protocol.
    pub unencodable: Counter,
    /// App-server links serving each hub.
    pub app_server_links: Family<HubLabels, Gauge>,
    /// Time from a client invocation to the app server's result.
    pub invocation_seconds: Histogram,
    /// 1 while connected to the cluster bus (always 0 with the local bus).
    pub bus_connected: Gauge,
    /// Messages published to other nodes.
    pub bus_published: Counter,
    /// Messages received from other nodes.
    pub bus_received: Counter,
    /// Messages for other nodes that could not be published (lost).
    pub bus_publish_failures: Counter,
    /// Reconnections to the cluster bus after losing it.
    pub bus_reconnects: Counter,
    /// TLS handshakes that failed or timed out, by port.
    pub tls_handshake_failures: Family<TlsHandshakeLabels, Counter>,
    /// Changed TLS files loaded (`ok`) or refused (`error`), by port.
    pub tls_reloads: Family<TlsReloadLabels, Counter>,
}

impl Metrics {
    /// Counts a client request answered with `status`, when it is an error.
    pub fn request_answered(&self, status: http::StatusCode) {
        use http::StatusCode as S;
        let reason = match status {
            s if !s.is_client_error() && !s.is_server_error() => return,
            S::UNAUTHORIZED => "unauthorized",
            S::FORBIDDEN => "forbidden",
            S::BAD_REQUEST => "bad request",
            S::NOT_FOUND => "not found",
            S::METHOD_NOT_ALLOWED => "method not allowed",
            S::CONFLICT => "conflict",
            S::PAYLOAD_TOO_LARGE => "too large",
            S::SERVICE_UNAVAILABLE => "unavailable",
            s if s.is_client_error() => "other client error",
            _ => "server error",
        };
        self.requests_refused
            .get_or_create(&RefusedLabels { reason })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let m = Metrics {
            connections: Family::default(),
            connections_opened: Family::default(),
            connections_closed: Family::default(),
            requests_refused: Family::default(),
            messages_received: Counter::default(),
            bytes_received: Counter::default(),
            messages_sent: Counter::default(),
            bytes_sent: Counter::default(),
            stateful_resumes: Counter::default(),
            stateful_expiries: Counter::default(),
            fanout_deliveries: Counter::default(),
            // 10 µs .. ~1.3 s
            fanout_seconds: Histogram::new(exponential_buckets(0.000_01, 4.0, 9)),
            outbox_overflows: Counter::default(),
            unencodable: Counter::default(),
            app_server_links: Family::default(),
            // 100 µs .. ~26 s
            invocation_seconds: Histogram::new(exponential_buckets(0.000_1, 4.0, 10)),
            bus_connected: Gauge::default(),
            bus_published: Counter::default(),
            bus_received: Counter::default(),
            bus_publish_failures: Counter::default(),
            bus_reconnects: Counter::default(),
            tls_handshake_failures: Family::default(),
            tls_reloads: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connections",
            "Client connections open now",
            m.connections.clone(),
        );
        registry.register(
            "connections_opened",
            "Client connections that completed their handshake",
            m.connections_opened.clone(),
        );
        registry.register(
            "connections_closed",
            "Client connections that ended, by reason",
            m.connections_closed.clone(),
        );
        registry.register(
            "requests_refused",
            "Client requests answered with an error status, by reason (unauthorized, bad request, not found, …)",
            m.requests_refused.clone(),
        );
        registry.register(
            "messages_received",
            "Hub messages received from clients",
            m.messages_received.clone(),
        );
        registry.register(
            "received_bytes",
            "Hub protocol bytes received from clients",
            m.bytes_received.clone(),
        );
        registry.register(
            "messages_sent",
            "Hub messages written to clients",
            m.messages_sent.clone(),
        );
        registry.register(
            "sent_bytes",
            "Hub protocol bytes written to clients",
            m.bytes_sent.clone(),
        );
        registry.register(
            "stateful_resumes",
            "Stateful-reconnect connections resumed on a new socket after their socket dropped",
            m.stateful_resumes.clone(),
        );
        registry.register(
            "stateful_expiries",
            "Stateful-reconnect connections ended because no reconnect came within the disconnect timeout",
            m.stateful_expiries.clone(),
        );
        registry.register(
            "fanout_deliveries",
            "Frames queued for clients by app-server sends",
            m.fanout_deliveries.clone(),
        );
        registry.register(
            "fanout_duration_seconds",
            "Time to queue one send for every local target",
            m.fanout_seconds.clone(),
        );
        registry.register(
            "outbox_overflows",
            "Clients closed because their outbound queue filled up (slow consumers)",
            m.outbox_overflows.clone(),
        );
        registry.register(
            "unencodable_sends",
            "Deliveries skipped because the payload has no form in the client's protocol",
            m.unencodable.clone(),
        );
        registry.register(
            "app_server_links",
            "App-server links serving each hub",
            m.app_server_links.clone(),
        );
        registry.register(
            "invocation_duration_seconds",
            "Time from a client invocation to the app server's result",
            m.invocation_seconds.clone(),
        );
        registry.register(
            "bus_connected",
            "1 while connected to the cluster bus (Redis), else 0",
            m.bus_connected.clone(),
        );
        registry.register(
            "bus_published",
            "Messages published to the other nodes of the cluster",
            m.bus_published.clone(),
        );
        registry.register(
            "bus_received",
            "Messages received from the other nodes of the cluster",
            m.bus_received.clone(),
        );
        registry.register(
            "bus_publish_failures",
            "Messages for other nodes that were lost because the bus was unreachable or its queue full",
            m.bus_publish_failures.clone(),
        );
        registry.register(
            "bus_reconnects",
            "Reconnections to the cluster bus after losing it",
            m.bus_reconnects.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed (reason=error) or did not finish in time (reason=timeout), by port",
            m.tls_handshake_failures.clone(),
        );
        registry.register(
            "tls_reloads",
            "Changed TLS certificate files loaded (result=ok) or refused and the previous ones kept (result=error), by port",
            m.tls_reloads.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Counts one batch of frames written to a client: two atomic adds
    /// per batch, whatever its length.
    pub fn sent(&self, messages: usize, bytes: usize) {
        if messages > 0 {
            self.messages_sent.inc_by(messages as u64);
            self.bytes_sent.inc_by(bytes as u64);
        }
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_their_labels() {
        let m = Metrics::default();
        let labels = ConnectionLabels {
            hub: "chat".into(),
            transport: "WebSockets",
            protocol: "json",
        };
        m.connections.get_or_create(&labels).inc();
        m.connections_closed
            .get_or_create(&CloseLabels {
                hub: "chat".into(),
                reason: "slow consumer",
            })
            .inc();
        m.fanout_seconds.observe(0.001);
        m.sent(3, 120);
        m.sent(0, 0);
        let text = m.render();
        assert!(
            text.contains(
                "switchboard_connections{hub=\"chat\",transport=\"WebSockets\",protocol=\"json\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "switchboard_connections_closed_total{hub=\"chat\",reason=\"slow consumer\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("switchboard_fanout_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("switchboard_messages_sent_total 3"), "{text}");
        assert!(text.contains("switchboard_sent_bytes_total 120"), "{text}");
        assert!(
            text.contains("switchboard_stateful_resumes_total 0"),
            "{text}"
        );
    }
}
