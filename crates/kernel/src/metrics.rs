//! Prometheus metrics, one registry per process (so several processes can live in one test binary).
//!
//! RED per route and per port call: the numbers that tell an operator which service to split out next.

use std::sync::Arc;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Latency buckets in seconds, from an in-process port call (sub-microsecond) to a slow request.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_001, 0.000_01, 0.000_1, 0.000_5, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    /// `http_requests_total{service, method, route, status}`.
    http_requests: IntCounterVec,
    /// `http_request_duration_seconds{service, method, route}`.
    http_duration: HistogramVec,
    /// `port_calls_total{caller, callee, method, mode, outcome}`; mode is `local` or `remote`.
    port_calls: IntCounterVec,
    /// `port_call_duration_seconds{caller, callee, method, mode}`.
    port_duration: HistogramVec,
    /// `events_published_total{producer, transport}`.
    events_published: IntCounterVec,
    /// `events_consumed_total{consumer, outcome}`; outcome `dead_lettered` is the alert to watch.
    events_consumed: IntCounterVec,
    /// `events_outbox_backlog{service}`: events committed but not yet accepted by the transport.
    outbox_backlog: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests handled, by owning service, route and status."),
            &["service", "method", "route", "status"],
        )
        .expect("metric definition is valid");
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by service and route.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["service", "method", "route"],
        )
        .expect("metric definition is valid");
        let port_calls = IntCounterVec::new(
            Opts::new("port_calls_total", "Calls through service ports, local (in-process) or remote (HTTP)."),
            &["caller", "callee", "method", "mode", "outcome"],
        )
        .expect("metric definition is valid");
        let port_duration = HistogramVec::new(
            HistogramOpts::new("port_call_duration_seconds", "Port call latency, local or remote.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["caller", "callee", "method", "mode"],
        )
        .expect("metric definition is valid");
        let events_published = IntCounterVec::new(
            Opts::new("events_published_total", "Events relayed from an outbox to the transport."),
            &["producer", "transport"],
        )
        .expect("metric definition is valid");
        let events_consumed = IntCounterVec::new(
            Opts::new("events_consumed_total", "Events delivered to a consumer, by outcome."),
            &["consumer", "outcome"],
        )
        .expect("metric definition is valid");
        let outbox_backlog = IntGaugeVec::new(
            Opts::new("events_outbox_backlog", "Events committed but not yet published."),
            &["service"],
        )
        .expect("metric definition is valid");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(port_calls.clone()),
            Box::new(port_duration.clone()),
            Box::new(events_published.clone()),
            Box::new(events_consumed.clone()),
            Box::new(outbox_backlog.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        Self(Arc::new(Inner {
            registry,
            http_requests,
            http_duration,
            port_calls,
            port_duration,
            events_published,
            events_consumed,
            outbox_backlog,
        }))
    }

    pub fn observe_http(&self, service: &str, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.0.http_requests.with_label_values(&[service, method, route, &status]).inc();
        self.0.http_duration.with_label_values(&[service, method, route]).observe(seconds);
    }

    pub fn observe_events_published(&self, producer: &str, transport: &str, count: usize) {
        self.0.events_published.with_label_values(&[producer, transport]).inc_by(count as u64);
    }

    pub fn observe_event_consumed(&self, consumer: &str, outcome: &str) {
        self.0.events_consumed.with_label_values(&[consumer, outcome]).inc();
    }

    pub fn set_outbox_backlog(&self, service: &str, backlog: i64) {
        self.0.outbox_backlog.with_label_values(&[service]).set(backlog);
    }

    /// Resolved handles for one port method, so that a call does no label lookup (a local call must stay
    /// well under a microsecond including its metrics).
    pub fn port_method(&self, caller: &str, callee: &str, method: &str, mode: &str) -> PortMethodMetrics {
        let labels = |outcome: &str| [caller, callee, method, mode, outcome].map(str::to_owned);
        PortMethodMetrics {
            ok: self.0.port_calls.with_label_values(&labels("ok")),
            error: self.0.port_calls.with_label_values(&labels("error")),
            duration: self.0.port_duration.with_label_values(&[caller, callee, method, mode]),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.0.registry.gather(), &mut buffer).expect("encoding to a Vec cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Pre-resolved counters and histogram for one (caller, callee, method, mode).
#[derive(Clone)]
pub struct PortMethodMetrics {
    ok: prometheus::IntCounter,
    error: prometheus::IntCounter,
    duration: prometheus::Histogram,
}

impl PortMethodMetrics {
    pub fn record(&self, ok: bool, seconds: f64) {
        if ok { &self.ok } else { &self.error }.inc();
        self.duration.observe(seconds);
    }
}
