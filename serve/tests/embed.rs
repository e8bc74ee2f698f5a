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

/// A runtime of two workers, as a caller's service would have.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The server started on localhost's ephemeral ports: where it listens, the sender that stops
/// it (the caller's shutdown future), and its task.
async fn start(
    detector: Detector,
    options: Options,
) -> (
    dlvp_serve::Bound,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), dlvp_serve::ServeError>>,
) {
    let listeners = Listeners::bind(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 0, 0)
        .await
        .unwrap();
    let bound = listeners.local_addrs().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dlvp_serve::serve(listeners, detector, options, async {
        let _ = stopped.await;
    }));
    (bound, stop, server)
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
    runtime().block_on(async {
        let (bound, stop, server) = start(detector, options).await;
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

/// Reads from `stream` until the blank line that ends a response head (a byte at a time: what
/// follows belongs to the body or the next response).
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream
            .read_u8()
            .await
            .expect("the head ends before the connection");
        head.push(byte);
    }
    String::from_utf8(head).unwrap()
}

/// `method path` with `body` on a fresh connection; the whole response.
async fn request(addr: std::net::SocketAddr, method: &str, path: &str, body: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

fn sample() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/samples/fabric_hole.png"
    ))
    .unwrap()
}

/// The demo model on tract; `None` when tract is not built.
fn demo_detector() -> Option<Detector> {
    if !BackendChoice::Tract.is_built() {
        return None;
    }
    Some(
        Detector::builder()
            .backend(BackendChoice::Tract)
            .threads(1)
            .build_from_bytes(MODEL.to_vec())
            .unwrap(),
    )
}

fn options() -> Options {
    Options {
        name: "demo".into(),
        max_batch: 2,
        max_queue_delay: Duration::from_micros(100),
        max_queue: 8,
        request_timeout: Duration::from_secs(60),
        max_body_bytes: 1 << 20,
        max_pixels: 1 << 24,
    }
}

#[test]
fn every_error_is_json_and_a_wrong_method_says_what_the_route_takes() {
    let Some(detector) = demo_detector() else {
        return;
    };
    runtime().block_on(async {
        let (bound, stop, server) = start(detector, options()).await;
        let image = sample();
        let (image, none): (&[u8], &[u8]) = (&image, b"");
        let cases = [
            (
                "GET",
                "/v1/detect",
                none,
                "405",
                "GET is not allowed on /v1/detect: it takes POST",
            ),
            (
                "POST",
                "/v2/health/ready",
                none,
                "405",
                "it takes GET, HEAD",
            ),
            (
                "POST",
                "/v1/detect?threshold=nan",
                image,
                "400",
                "`threshold`=nan",
            ),
            (
                "POST",
                "/v1/detect?threshold=abc",
                image,
                "400",
                "`threshold`=\\\"abc\\\"",
            ),
            (
                "POST",
                "/v1/detect?treshold=0.1",
                image,
                "400",
                "did you mean `threshold`?",
            ),
            ("GET", "/v3", none, "404", "no such endpoint: /v3"),
        ];
        for (method, path, body, status, says) in cases {
            let answer = request(bound.http, method, path, body).await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{answer}"
            );
            let lower = answer.to_lowercase();
            assert!(lower.contains("content-type: application/json"), "{answer}");
            assert!(
                answer.contains("{\"error\":\"") && answer.contains(says),
                "{answer}"
            );
            if status == "405" {
                assert!(lower.contains("allow: "), "{answer}");
            }
        }
        // Health answers keep KServe's bodiless form.
        let ready = request(bound.http, "GET", "/v2/health/ready", b"").await;
        assert!(
            ready.starts_with("HTTP/1.1 200") && ready.ends_with("\r\n\r\n"),
            "{ready}"
        );
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    });
}

#[test]
fn on_shutdown_it_drains_not_ready_new_requests_refused_the_accepted_one_answered() {
    let Some(detector) = demo_detector() else {
        return;
    };
    runtime().block_on(async {
        let (bound, stop, server) = start(detector, options()).await;
        let image = sample();
        // A request in flight for as long as the test wants: its body half sent. The server asks
        // for the body (100 Continue) once the handler reads it, so it has been accepted.
        let mut in_flight = tokio::net::TcpStream::connect(bound.http).await.unwrap();
        let head = format!(
            "POST /v1/detect HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            image.len()
        );
        in_flight.write_all(head.as_bytes()).await.unwrap();
        let go_on = tokio::time::timeout(Duration::from_secs(30), read_head(&mut in_flight))
            .await
            .expect("100 Continue within 30 s");
        assert!(go_on.starts_with("HTTP/1.1 100"), "{go_on}");
        let half = image.len() / 2;
        in_flight.write_all(&image[..half]).await.unwrap();

        stop.send(()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ready = get(bound.http, "/v2/health/ready").await;
            if ready.starts_with("HTTP/1.1 503") {
                break;
            }
            assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "still ready 30 s after the stop"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(get(bound.http, "/v2/health/live")
            .await
            .starts_with("HTTP/1.1 200"));
        let refused = request(bound.http, "POST", "/v1/detect", &image).await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        assert!(refused.contains("the server is stopping"), "{refused}");
        assert!(!server.is_finished(), "it stopped with a request in flight");

        in_flight.write_all(&image[half..]).await.unwrap();
        let mut answer = String::new();
        in_flight.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"score\":"), "{answer}");
        tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("the server stops once the request in flight is answered")
            .unwrap()
            .unwrap();
        assert!(tokio::net::TcpStream::connect(bound.http).await.is_err());
    });
}
