//! Prometheus metrics of `dlvp serve` (text format on `--metrics-port`, `GET /metrics`).
//!
//! Triton's names where Triton has the metric (`nv_inference_request_success`,
//! `nv_inference_request_failure`, `nv_inference_count`, `nv_inference_exec_count`, the
//! cumulative `nv_inference_*_duration_us` counters, `nv_inference_pending_request_count`), so
//! dashboards built for Triton read `dlvp serve` too; histograms of what Triton only sums:
//! `dlvp_request_duration_seconds`, `dlvp_queue_duration_seconds`,
//! `dlvp_compute_duration_seconds` and `dlvp_batch_size` (images per model run), and
//! `dlvp_requests_total` by protocol and outcome.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// How a request ended, as `dlvp_requests_total{outcome}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Malformed or not matching the model (HTTP 400/404/413, gRPC INVALID_ARGUMENT/NOT_FOUND).
    Invalid,
    /// The queue was full or the server stopping (HTTP 503, gRPC UNAVAILABLE).
    Rejected,
    /// It waited past `--request-timeout-ms` (HTTP 504, gRPC DEADLINE_EXCEEDED).
    Timeout,
    /// The model run failed (HTTP 500, gRPC INTERNAL).
    Error,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Invalid => "invalid",
            Outcome::Rejected => "rejected",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    success: IntCounter,
    failure: IntCounterVec,
    inference_count: IntCounter,
    exec_count: IntCounter,
    request_us: IntCounter,
    queue_us: IntCounter,
    compute_us: IntCounter,
    pending: IntGauge,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    queue_seconds: Histogram,
    compute_seconds: Histogram,
    batch_size: Histogram,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

impl Metrics {
    pub fn new(model: &str, version: &str) -> Metrics {
        let registry = Registry::new();
        let labelled = |name: &str, help: &str| {
            Opts::new(name, help)
                .const_label("model", model)
                .const_label("version", version)
        };
        let seconds = |name: &str, help: &str| {
            HistogramOpts::from(labelled(name, help)).buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
            ])
        };
        let m = Metrics {
            success: IntCounter::with_opts(labelled(
                "nv_inference_request_success",
                "Number of successful inference requests",
            ))
            .unwrap(),
            failure: IntCounterVec::new(
                labelled(
                    "nv_inference_request_failure",
                    "Number of failed inference requests",
                ),
                &["reason"],
            )
            .unwrap(),
            inference_count: IntCounter::with_opts(labelled(
                "nv_inference_count",
                "Number of images inferred (a request of batch B counts B)",
            ))
            .unwrap(),
            exec_count: IntCounter::with_opts(labelled(
                "nv_inference_exec_count",
                "Number of model runs (batches) executed",
            ))
            .unwrap(),
            request_us: IntCounter::with_opts(labelled(
                "nv_inference_request_duration_us",
                "Cumulative inference request duration in microseconds (queue and compute)",
            ))
            .unwrap(),
            queue_us: IntCounter::with_opts(labelled(
                "nv_inference_queue_duration_us",
                "Cumulative time requests spent waiting in the queue in microseconds",
            ))
            .unwrap(),
            compute_us: IntCounter::with_opts(labelled(
                "nv_inference_compute_infer_duration_us",
                "Cumulative model compute time of requests in microseconds",
            ))
            .unwrap(),
            pending: IntGauge::with_opts(labelled(
                "nv_inference_pending_request_count",
                "Requests accepted and not yet answered",
            ))
            .unwrap(),
            requests: IntCounterVec::new(
                labelled(
                    "dlvp_requests_total",
                    "Inference requests by protocol and outcome",
                ),
                &["protocol", "outcome"],
            )
            .unwrap(),
            request_seconds: HistogramVec::new(
                seconds(
                    "dlvp_request_duration_seconds",
                    "Time from a request's arrival to its answer, by protocol",
                ),
                &["protocol"],
            )
            .unwrap(),
            queue_seconds: Histogram::with_opts(seconds(
                "dlvp_queue_duration_seconds",
                "Time a request waited for its batch to start",
            ))
            .unwrap(),
            compute_seconds: Histogram::with_opts(seconds(
                "dlvp_compute_duration_seconds",
                "Time one model run (one batch) took",
            ))
            .unwrap(),
            batch_size: Histogram::with_opts(
                HistogramOpts::from(labelled(
                    "dlvp_batch_size",
                    "Images per model run, as the dynamic batcher formed them",
                ))
                .buckets(vec![
                    1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 64.0,
                ]),
            )
            .unwrap(),
            registry,
        };
        for c in [
            Box::new(m.success.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.failure.clone()),
            Box::new(m.inference_count.clone()),
            Box::new(m.exec_count.clone()),
            Box::new(m.request_us.clone()),
            Box::new(m.queue_us.clone()),
            Box::new(m.compute_us.clone()),
            Box::new(m.pending.clone()),
            Box::new(m.requests.clone()),
            Box::new(m.request_seconds.clone()),
            Box::new(m.queue_seconds.clone()),
            Box::new(m.compute_seconds.clone()),
            Box::new(m.batch_size.clone()),
        ] {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }

    /// A batch of `images` ran in `compute`.
    pub fn batch(&self, images: usize, compute: Duration) {
        self.exec_count.inc();
        self.batch_size.observe(images as f64);
        self.compute_seconds.observe(compute.as_secs_f64());
    }

    /// A request was accepted into the queue.
    pub fn accepted(&self) {
        self.pending.inc();
    }

    /// An accepted request was answered (or abandoned).
    pub fn answered(&self) {
        self.pending.dec();
    }

    /// A request of `images` images ended with `outcome` after `total`; `queue` and `compute`
    /// when it ran.
    pub fn request(
        &self,
        protocol: &str,
        outcome: Outcome,
        images: usize,
        total: Duration,
        ran: Option<(Duration, Duration)>,
    ) {
        self.requests
            .with_label_values(&[protocol, outcome.name()])
            .inc();
        self.request_seconds
            .with_label_values(&[protocol])
            .observe(total.as_secs_f64());
        if outcome == Outcome::Success {
            self.success.inc();
            self.inference_count.inc_by(images as u64);
            self.request_us.inc_by(micros(total));
        } else {
            self.failure.with_label_values(&[outcome.name()]).inc();
        }
        if let Some((queue, compute)) = ran {
            self.queue_us.inc_by(micros(queue));
            self.compute_us.inc_by(micros(compute));
            self.queue_seconds.observe(queue.as_secs_f64());
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding metrics into memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
