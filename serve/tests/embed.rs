//! The server mounted in someone else's service: it runs on the caller's tokio runtime, on
//! listeners the caller bound, and stops when the caller's shutdown future completes — no
//! signal handler of its own. Plain HTTP/1.1 over a TCP stream, so the test needs no client crate.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use dlvp_runtime::{BackendChoice, Detector};
use dlvp_serve::{Listeners, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MODEL: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/demo/dlvp-clip-demo.onnx"
));

/// `GET path` on `addr`; the status line and body.
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[test]
fn serves_on_the_callers_runtime_until_the_callers_shutdown() {
    if !BackendChoice::Tract.is_built() {
        return;
    }
    let detector = Detector::builder()
        .backend(BackendChoice::Tract)
        .threads(1)
        .build_from_bytes(MODEL.to_vec())
        .unwrap();
    let options = Options {
        name: "demo".into(),
        max_batch: 2,
        max_queue_delay: Duration::from_micros(100),
        max_queue: 8,
        request_timeout: Duration::from_secs(30),
        max_body_bytes: 1 << 20,
        max_pixels: 1 << 24,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listeners = Listeners::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 0, 0)
            .await
            .unwrap();
        let bound = listeners.local_addrs().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(dlvp_serve::serve(listeners, detector, options, async {
            let _ = stopped.await;
        }));
        let ready =
            tokio::time::timeout(Duration::from_secs(30), get(bound.http, "/v2/health/ready"))
                .await
                .expect("the server answers within 30 s");
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        let metadata = get(bound.http, "/v2/models/demo").await;
        assert!(metadata.contains("\"name\":\"demo\""), "{metadata}");
        assert!(get(bound.metrics, "/metrics")
            .await
            .starts_with("HTTP/1.1 200"));
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("the server stops within 30 s of the caller's shutdown")
            .unwrap()
            .unwrap();
        // Stopped: nothing listens any more.
        assert!(tokio::net::TcpStream::connect(bound.http).await.is_err());
    });
}
