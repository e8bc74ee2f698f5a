//! `dlvp serve [--model M] [--host H] [--http-port P] [--grpc-port P] [--metrics-port P]
//! [--max-batch N] [--max-queue-delay-us N] [--max-queue N] [--request-timeout-ms N]
//! [--max-body-mib N] [--max-pixels N] [--model-name NAME] [RUN]`: the graph behind the KServe v2
//! / Triton inference protocol (dlvp-serve), until SIGINT or SIGTERM.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dlvp_serve::Listeners;

use crate::cli::{load_detector, resolve_model, RunArgs};

#[derive(Args)]
pub struct ServeArgs {
    /// An ONNX graph written by `dlvp export` (default: the embedded demo model).
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    /// The model's name in URLs and RPCs (default: the spec's name, as `export --triton-repo`
    /// names it).
    #[arg(long, value_parser = |s: &str| dlvp_exporter::artifacts::triton::check_model_name(s).map(|()| s.to_string()))]
    model_name: Option<String>,
    /// The address to listen on; 0.0.0.0 serves every interface (put it behind your own proxy
    /// or firewall: the protocol has no authentication).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// HTTP/REST port (0: any free port, printed at start).
    #[arg(long, default_value_t = 8000)]
    http_port: u16,
    /// gRPC port (0: any free port).
    #[arg(long, default_value_t = 8001)]
    grpc_port: u16,
    /// Prometheus metrics port, `GET /metrics` (0: any free port).
    #[arg(long, default_value_t = 8002)]
    metrics_port: u16,
    /// How long the batcher may hold the oldest waiting request to fill a batch (Triton's
    /// max_queue_delay_microseconds). 0: run what is queued as soon as the model is free.
    #[arg(long, default_value_t = 0)]
    max_queue_delay_us: u64,
    /// Requests that may wait for the model; one more is refused at once (HTTP 503, gRPC
    /// UNAVAILABLE).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_queue: u32,
    /// A request not answered within this many milliseconds of its arrival fails (HTTP 504, gRPC
    /// DEADLINE_EXCEEDED); one still queued then is never run.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_ms: u64,
    /// Largest request body (HTTP) or message (gRPC), MiB; larger ones get HTTP 413.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_body_mib: u32,
    /// Refuse images of more pixels than this, from their header (`/v1/detect`).
    #[arg(long, default_value_t = dlvp_runtime::preprocess::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// The backend; `--max-batch` (default 8) is also the largest batch the dynamic batcher
    /// forms and a request may carry (max_batch_size).
    #[command(flatten)]
    pub run: RunArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // main() restores SIGPIPE's default for `dlvp detect | head`; a server must instead survive
    // writing to a client that hung up (the write fails with EPIPE and the connection closes).
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let model = resolve_model(args.model.as_deref());
    let max_batch = args.run.max_batch.unwrap_or(8).max(1);
    let detector = load_detector(&model, &args.run, max_batch)?;
    let name = args.model_name.clone().unwrap_or_else(|| {
        dlvp_exporter::artifacts::triton::default_model_name(&detector.info().spec)
    });
    let options = dlvp_serve::Options {
        name: name.clone(),
        max_batch: max_batch as usize,
        max_queue_delay: Duration::from_micros(args.max_queue_delay_us),
        max_queue: args.max_queue as usize,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        max_body_bytes: args.max_body_mib as usize * 1024 * 1024,
        max_pixels: args.max_pixels,
    };
    let backend = format!("{} ({})", detector.backend().name(), detector.executor());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listeners =
            Listeners::bind(args.host, args.http_port, args.grpc_port, args.metrics_port).await?;
        let bound = listeners.local_addrs()?;
        eprintln!(
            "serving model `{name}` on {backend}, max batch {max_batch}\n\
             HTTP    http://{}/v2/models/{name}  (POST /v2/models/{name}/infer, POST /v1/detect)\n\
             gRPC    {}\n\
             metrics http://{}/metrics\n\
             ready (Ctrl-C or SIGTERM stops it after answering what it accepted)",
            bound.http, bound.grpc, bound.metrics
        );
        dlvp_serve::serve(listeners, detector, options, dlvp_serve::interrupted()).await
    })?;
    eprintln!("stopped: every accepted request answered");
    Ok(ExitCode::SUCCESS)
}
