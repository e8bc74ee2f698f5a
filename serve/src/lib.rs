//! dlvp-serve: `dlvp serve` — one exported DLVP-CLIP graph behind the KServe v2 ("Open
//! Inference Protocol") that Triton implements, so `tritonclient.http`/`tritonclient.grpc` and
//! any KServe client work against it unchanged, from one edge box to a Triton cluster.
//!
//! - [`http`]: REST — health, server and model metadata, the model config, `infer` with JSON
//!   tensors and Triton's binary tensor extension, and `POST /v1/detect` for image files;
//! - [`grpc`]: the `inference.GRPCInferenceService` RPCs (tonic, stub from `build.rs`);
//! - [`batcher`]: dynamic batching with a bounded queue and per-request timeouts;
//! - [`metrics`]: Prometheus text on its own port;
//! - [`model`], [`tensor`], [`kserve`]: the served model's description, request/response
//!   tensors, and the protocol's protobuf messages.
//!
//! [`serve`] runs on the caller's tokio runtime, on the three [`Listeners`] the caller bound
//! ([`Listeners::bind`] binds them), until the caller's `shutdown` future completes; then it
//! drains ([`drain`]): not ready any more (`/v2/health/ready` 503, gRPC ServerReady false), every
//! new inference request refused with 503 / UNAVAILABLE, every request already admitted answered
//! — the listeners still accepting meanwhile — and then it stops accepting and returns. The drain
//! is bounded by the request timeout. So it can be mounted inside another service; the `dlvp
//! serve` command owns the runtime and chooses the signals ([`interrupted`]: SIGINT, SIGTERM) as
//! its shutdown.

pub mod batcher;
pub mod drain;
pub mod grpc;
pub mod http;
pub mod kserve;
pub mod metrics;
pub mod model;
pub mod query;
pub mod tensor;

use std::future::IntoFuture;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dlvp_runtime::{Detector, GraphInput};

use batcher::{Batcher, Done, JobError, Refused};
use drain::{Admitted, Drain};
use metrics::{Metrics, Outcome};
use model::ServedModel;

/// How the model is served: its name, the batcher and the limits on requests.
#[derive(Debug, Clone)]
pub struct Options {
    /// The model's name in URLs and RPCs (default: the spec's name, as the Triton export names it).
    pub name: String,
    pub max_batch: usize,
    pub max_queue_delay: Duration,
    pub max_queue: usize,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_pixels: u64,
}

/// Where the servers listen.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
}

/// The three listeners a server takes: KServe over HTTP, KServe over gRPC, Prometheus metrics.
#[derive(Debug)]
pub struct Listeners {
    pub http: tokio::net::TcpListener,
    pub grpc: tokio::net::TcpListener,
    pub metrics: tokio::net::TcpListener,
}

impl Listeners {
    /// Binds the three ports on `host` (0 lets the system pick a free port).
    pub async fn bind(
        host: IpAddr,
        http: u16,
        grpc: u16,
        metrics: u16,
    ) -> Result<Listeners, ServeError> {
        Ok(Listeners {
            http: bind(host, http, "HTTP").await?,
            grpc: bind(host, grpc, "gRPC").await?,
            metrics: bind(host, metrics, "metrics").await?,
        })
    }

    /// Where they listen.
    pub fn local_addrs(&self) -> Result<Bound, ServeError> {
        let local = |l: &tokio::net::TcpListener, what| {
            l.local_addr()
                .map_err(|source| ServeError::Address { what, source })
        };
        Ok(Bound {
            http: local(&self.http, "HTTP")?,
            grpc: local(&self.grpc, "gRPC")?,
            metrics: local(&self.metrics, "metrics")?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{what} listener has no local address: {source}")]
    Address {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{what} server failed: {message}")]
    Server { what: &'static str, message: String },
    #[error(
        "{left} accepted request(s) still unanswered {after:?} after the stop (the request \
         timeout bounds the drain); they were dropped"
    )]
    Drain { left: usize, after: Duration },
}

/// Everything a request handler needs.
pub struct State {
    pub model: ServedModel,
    pub batcher: Batcher,
    pub metrics: Arc<Metrics>,
    /// Admission of inference requests; ready until the drain starts.
    pub drain: Drain,
    pub timeout: Duration,
    pub max_body: usize,
    pub max_pixels: u64,
    /// The spec and backend, for `/v1/detect`'s preprocessing and its JSON.
    pub info: dlvp_runtime::ModelInfo,
    pub backend: String,
    pub provider: String,
    /// `/v1/detect`'s CPU stages (decode and resize, the map's PNG) run on tokio's blocking pool,
    /// at most one per core at a time, as `dlvp_runtime::pipeline` sizes its stages: a burst of
    /// large images queues here instead of running hundreds of decodes against the model's
    /// threads.
    pub cpu_stages: tokio::sync::Semaphore,
}

/// Why an accepted tensor did not come back with outputs.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(
        "the server is stopping: it answers the requests it accepted and takes no new ones \
         (send this one to another instance)"
    )]
    Draining,
    #[error("the request timed out after {0:?} (the server's request timeout)")]
    Timeout(Duration),
    #[error(transparent)]
    Model(batcher::BatchError),
}

impl State {
    /// Admits an inference request, or refuses it (counted as rejected) once the drain started.
    pub fn admit(&self, protocol: &str, arrived: Instant) -> Result<Admitted<'_>, InferError> {
        self.drain.admit().ok_or_else(|| {
            self.metrics
                .request(protocol, Outcome::Rejected, 0, arrived.elapsed(), None);
            InferError::Draining
        })
    }

    /// Queues a checked batch and waits for its outputs, counting the request in the metrics.
    pub async fn infer(
        &self,
        input: GraphInput,
        protocol: &str,
        arrived: Instant,
    ) -> Result<Done, InferError> {
        let images = input.batch();
        let result = match self.batcher.submit(input, self.timeout) {
            Err(refused) => Err(InferError::Refused(refused)),
            Ok(receiver) => {
                self.metrics.accepted();
                let left = self.timeout.saturating_sub(arrived.elapsed());
                let waited = tokio::time::timeout(left, receiver).await;
                self.metrics.answered();
                match waited {
                    Err(_) => Err(InferError::Timeout(self.timeout)),
                    // The worker dropped the request unanswered: only at its timeout.
                    Ok(Err(_)) => Err(InferError::Timeout(self.timeout)),
                    Ok(Ok(Err(JobError::Timeout(t)))) => Err(InferError::Timeout(t)),
                    Ok(Ok(Err(JobError::Model(m)))) => Err(InferError::Model(m)),
                    Ok(Ok(Ok(done))) => Ok(done),
                }
            }
        };
        let (outcome, ran) = match &result {
            Ok(done) => (Outcome::Success, Some((done.queued, done.compute))),
            Err(InferError::Refused(_) | InferError::Draining) => (Outcome::Rejected, None),
            Err(InferError::Timeout(_)) => (Outcome::Timeout, None),
            Err(InferError::Model(_)) => (Outcome::Error, None),
        };
        self.metrics
            .request(protocol, outcome, images, arrived.elapsed(), ran);
        result
    }

    /// A request refused before it reached the queue.
    pub fn invalid(&self, protocol: &str, arrived: Instant) {
        self.metrics
            .request(protocol, Outcome::Invalid, 0, arrived.elapsed(), None);
    }
}

async fn bind(
    host: IpAddr,
    port: u16,
    what: &'static str,
) -> Result<tokio::net::TcpListener, ServeError> {
    let addr = SocketAddr::new(host, port);
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, what, source })
}

/// Serves `detector` on `listeners` until `shutdown` completes, then drains (not ready, new
/// inference requests refused with 503 / UNAVAILABLE, the admitted ones answered, the listeners
/// still accepting), stops accepting and returns. The drain lasts at most the request timeout:
/// [`ServeError::Drain`] when requests were still unanswered then. Runs on the caller's tokio
/// runtime (multi-thread: the batcher's worker is a thread of its own, the handlers are tasks).
pub async fn serve(
    listeners: Listeners,
    detector: Detector,
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let info = detector.info().clone();
    let gpu = matches!(
        detector.provider(),
        Some(dlvp_runtime::Provider::Cuda | dlvp_runtime::Provider::TensorRt)
    );
    let model = ServedModel::new(
        &options.name,
        &info,
        options.max_batch,
        options.max_queue_delay.as_micros() as u64,
        gpu,
    );
    let metrics = Arc::new(Metrics::new(&model.name, &model.version));
    let (size, k) = (info.spec.image_size, info.spec.slfs.top_k);
    let backend = detector.backend().name().to_string();
    let provider = detector.executor();
    let detector = Arc::new(detector);
    let runner: Arc<batcher::Runner> = Arc::new(move |input: GraphInput| {
        let n = input.batch();
        let outputs = detector
            .run(input)
            .map_err(|e| batcher::BatchError::Detector(Arc::new(e)))?;
        outputs
            .check_shapes(n, size, k)
            .map_err(batcher::BatchError::Contract)?;
        Ok(outputs)
    });
    let on_batch = {
        let metrics = Arc::clone(&metrics);
        Arc::new(move |images: usize, compute: Duration| metrics.batch(images, compute))
    };
    let (batcher, worker) = Batcher::start(
        runner,
        batcher::Settings {
            max_batch: options.max_batch,
            max_delay: options.max_queue_delay,
            max_queue: options.max_queue,
        },
        on_batch,
    );
    let state = Arc::new(State {
        model,
        batcher,
        metrics: Arc::clone(&metrics),
        drain: Drain::new(),
        timeout: options.request_timeout,
        max_body: options.max_body_bytes,
        max_pixels: options.max_pixels,
        cpu_stages: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        ),
        info,
        backend,
        provider,
    });

    let Listeners {
        http: http_listener,
        grpc: grpc_listener,
        metrics: metrics_listener,
    } = listeners;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|&s| s).await;
    };
    let http_server = {
        let server = axum::serve(http_listener, http::router(Arc::clone(&state)))
            .with_graceful_shutdown(until_stopped(stopped.clone()))
            .into_future();
        tokio::spawn(async move { server.await.map_err(|e| e.to_string()) })
    };
    let metrics_server = {
        let server = axum::serve(metrics_listener, http::metrics_router(Arc::clone(&metrics)))
            .with_graceful_shutdown(until_stopped(stopped.clone()))
            .into_future();
        tokio::spawn(async move { server.await.map_err(|e| e.to_string()) })
    };
    let grpc_server = tokio::spawn(grpc::serve(
        grpc_listener,
        Arc::clone(&state),
        until_stopped(stopped.clone()),
    ));

    shutdown.await;
    // Drain while still accepting connections: not ready, new requests refused, the admitted
    // ones answered. Every admitted request is answered or timed out within the request timeout
    // of its arrival, unless its client is still sending its body: the same bound ends the drain.
    state.drain.start();
    let drain_deadline = tokio::time::Instant::now() + options.request_timeout;
    let _ = tokio::time::timeout_at(drain_deadline, state.drain.drained()).await;
    let left = state.drain.in_flight();
    let _ = stop.send(true);
    drop(state);
    // Stopping accepting, the servers finish the answers being written and close their
    // connections; one whose client never completes a request is cut off at the deadline.
    let close_by = drain_deadline.max(tokio::time::Instant::now() + CLOSE_GRACE);
    // A lost request first: it is what the caller must hear of.
    let mut failures = vec![];
    if left > 0 {
        failures.push(ServeError::Drain {
            left,
            after: options.request_timeout,
        });
    }
    let mut all_closed = true;
    let servers = [
        ("HTTP", http_server),
        ("metrics", metrics_server),
        ("gRPC", grpc_server),
    ];
    for (what, mut server) in servers {
        let message = match tokio::time::timeout_at(close_by, &mut server).await {
            Ok(Ok(Ok(()))) => continue,
            Ok(Ok(Err(message))) => message,
            Ok(Err(e)) => e.to_string(),
            Err(_) => {
                server.abort();
                all_closed = false;
                continue;
            }
        };
        failures.push(ServeError::Server { what, message });
    }
    if all_closed {
        // Every handle of the queue is gone with the servers: the worker answers what is left,
        // then exits. (A server cut off may leave a connection task holding one: then the
        // worker is left to the process's exit rather than waited for.)
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    }
    match failures.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// How long the servers have, past the drain, to write their last answers and close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Completes at SIGINT (Ctrl-C) or SIGTERM: a `shutdown` for [`serve`] in a program that lets
/// the server own those signals (the `dlvp serve` command does).
pub async fn interrupted() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        },
        // Without a SIGTERM handler, Ctrl-C still stops it.
        Err(_) => {
            let _ = interrupt.await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
