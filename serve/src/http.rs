//! The HTTP/REST side of the KServe v2 protocol, as Triton serves it, and `POST /v1/detect`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v2/health/live`, `/v2/health/ready` | 200 (ready: 503 while stopping) |
//! | `GET /v2` | server metadata |
//! | `GET /v2/models/{m}[/versions/{v}]` | model metadata |
//! | `GET /v2/models/{m}[/versions/{v}]/ready` | 200, 404 for an unknown model |
//! | `GET /v2/models/{m}[/versions/{v}]/config` | Triton's model config (JSON) |
//! | `POST /v2/models/{m}[/versions/{v}]/infer` | inference: JSON tensors, or the binary tensor extension |
//! | `POST /v1/detect` | an image file (body or multipart) → `dlvp detect --json`'s object |
//!
//! Binary tensor extension: the request's `Inference-Header-Content-Length: L` says the body's
//! first L bytes are the JSON header; each input with `parameters.binary_data_size: n` takes the
//! next n bytes of the rest, in order, and those sizes must add up to exactly the rest. Outputs
//! asked for with `parameters.binary_data: true` (or all of them, with the request's
//! `binary_data_output: true`) are answered the same way. Every error is `application/json`
//! `{"error": "..."}` with 400 (malformed, wrong name, datatype, shape or size, a bad or unknown
//! `/v1/detect` query parameter), 404 (unknown model, version or route), 405 (wrong method, with
//! `Allow`), 413 (a body over `--max-body-mib`, an image over `--max-pixels`), 503 (queue full,
//! draining), 504 (timed out) or 500 (the model failed) — [`json_errors`] turns the few answers
//! axum makes itself (405, a rejected path) into that too. Health and readiness answer with a
//! status and no body, as KServe's health API says.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use dlvp_runtime::preprocess::ImageErrorKind;
use dlvp_runtime::tiling::{TileOptions, Tiled, TiledImage};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::metrics::Metrics;
use crate::query::DetectQuery;
use crate::tensor::{self, BadKind, BadRequest, Data};
use crate::{InferError, State};

const PROTOCOL: &str = "http";
/// The header of Triton's binary tensor data extension.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

type Shared = Arc<State>;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn bad(b: BadRequest) -> Response {
    let status = match b.kind {
        BadKind::Invalid => StatusCode::BAD_REQUEST,
        BadKind::NotFound => StatusCode::NOT_FOUND,
        BadKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
    };
    error(status, b.message)
}

fn infer_error(e: InferError) -> Response {
    let status = match &e {
        InferError::Refused(_) | InferError::Draining => StatusCode::SERVICE_UNAVAILABLE,
        InferError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        InferError::Model(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let draining = matches!(e, InferError::Draining);
    let mut response = error(status, e.to_string());
    if draining {
        // A pooled connection to a draining server is worth nothing: the client's next request
        // opens one that a load balancer can send to another instance.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Marks an answer whose status is all it says: health and readiness, whose body KServe's health
/// API leaves empty. [`json_errors`] leaves those alone.
#[derive(Debug, Clone, Copy)]
struct StatusOnly;

fn status_only(status: StatusCode) -> Response {
    let mut response = status.into_response();
    response.extensions_mut().insert(StatusOnly);
    response
}

/// The longest body of an error axum made itself that is kept as the message (its rejections
/// are a sentence).
const AXUM_ERROR_TEXT: usize = 16 * 1024;

/// Makes every error answer `application/json` `{"error": "..."}`, as the protocol's errors are:
/// the handlers answer so already; this catches what axum answers before a handler runs — a
/// wrong method (405, empty, with `Allow`), a path it cannot decode (400, text) — so a client
/// parses every error one way.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error())
        || is_json
        || response.extensions().get::<StatusOnly>().is_some()
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, AXUM_ERROR_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .replace(',', ", ");
        format!("{method} is not allowed on {path}: it takes {allow}")
    } else if text.is_empty() {
        format!(
            "{method} {path}: {}",
            status.canonical_reason().unwrap_or("error")
        )
    } else {
        format!("{method} {path}: {text}")
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&json!({ "error": message })).expect("JSON values serialise");
    Response::from_parts(parts, Body::from(body))
}

pub fn router(state: Shared) -> Router {
    let limit = state.max_body;
    let routes = Router::new()
        .route(
            "/v2/health/live",
            get(|| async { status_only(StatusCode::OK) }),
        )
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{model}", get(model_metadata))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(model_metadata_v),
        )
        .route("/v2/models/{model}/ready", get(model_ready))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(model_ready_v),
        )
        .route("/v2/models/{model}/config", get(model_config))
        .route(
            "/v2/models/{model}/versions/{version}/config",
            get(model_config_v),
        )
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer_v))
        .route("/v1/detect", post(detect))
        .fallback(|request: Request| async move {
            error(
                StatusCode::NOT_FOUND,
                format!("no such endpoint: {}", request.uri().path()),
            )
        })
        // Multipart reads through axum's own limit; the other bodies are limited as they are read.
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state);
    with_json_errors(routes)
}

/// `routes` with [`json_errors`] around them all. Around, not `routes.layer(…)`: axum adds a
/// 405's `Allow` header outside a router's own layers, and the message names what it allows.
fn with_json_errors(routes: Router) -> Router {
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(json_errors))
}

pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    let routes = Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                }
            }),
        )
        .fallback(|request: Request| async move {
            error(
                StatusCode::NOT_FOUND,
                format!(
                    "no such endpoint: {} (this port serves GET /metrics)",
                    request.uri().path()
                ),
            )
        });
    with_json_errors(routes)
}

async fn ready(axum::extract::State(state): axum::extract::State<Shared>) -> Response {
    if state.drain.is_ready() {
        status_only(StatusCode::OK)
    } else {
        status_only(StatusCode::SERVICE_UNAVAILABLE)
    }
}

async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "dlvp",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data", "model_configuration"],
    }))
}

/// The model a path names, or the 404 Triton answers.
fn find<'a>(state: &'a State, model: &str, version: &str) -> Result<&'a State, BadRequest> {
    if model != state.model.name {
        return Err(tensor::not_found(format!(
            "Request for unknown model: '{model}' is not found (this server runs '{}')",
            state.model.name
        )));
    }
    if !state.model.has_version(version) {
        return Err(tensor::not_found(format!(
            "Request for unknown model: '{model}' version {version} is not found (it has version {})",
            state.model.version
        )));
    }
    Ok(state)
}

type S = axum::extract::State<Shared>;

async fn model_metadata(s: S, Path(model): Path<String>) -> Response {
    metadata_for(&s, &model, "")
}
async fn model_metadata_v(s: S, Path((model, v)): Path<(String, String)>) -> Response {
    metadata_for(&s, &model, &v)
}
fn metadata_for(state: &State, model: &str, version: &str) -> Response {
    match find(state, model, version) {
        Ok(s) => Json(s.model.metadata_json()).into_response(),
        Err(e) => bad(e),
    }
}

async fn model_ready(s: S, Path(model): Path<String>) -> Response {
    ready_for(&s, &model, "")
}
async fn model_ready_v(s: S, Path((model, v)): Path<(String, String)>) -> Response {
    ready_for(&s, &model, &v)
}
fn ready_for(state: &State, model: &str, version: &str) -> Response {
    match find(state, model, version) {
        Ok(s) if s.drain.is_ready() => status_only(StatusCode::OK),
        Ok(_) => status_only(StatusCode::SERVICE_UNAVAILABLE),
        Err(e) => bad(e),
    }
}

async fn model_config(s: S, Path(model): Path<String>) -> Response {
    config_for(&s, &model, "")
}
async fn model_config_v(s: S, Path((model, v)): Path<(String, String)>) -> Response {
    config_for(&s, &model, &v)
}
fn config_for(state: &State, model: &str, version: &str) -> Response {
    match find(state, model, version) {
        Ok(s) => Json(s.model.config_json()).into_response(),
        Err(e) => bad(e),
    }
}

/// Reads at most `limit` bytes of a body: 413 beyond, 400 if the client broke off.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, BadRequest> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BadRequest {
            kind: BadKind::TooLarge,
            message: format!("the request body is larger than the server's limit of {limit} bytes"),
        }),
        Err(e) => Err(tensor::invalid(format!("reading the request body: {e}"))),
    }
}

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<InputTensor>,
    #[serde(default)]
    outputs: Vec<RequestedOutput>,
}

#[derive(Deserialize)]
struct InputTensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// JSON `data`, flattened or nested, as numbers of the input's kind.
fn json_values(name: &str, data: &Value, float: bool) -> Result<Data<'static>, BadRequest> {
    fn flatten<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
            other => out.push(other),
        }
    }
    let mut leaves = vec![];
    flatten(data, &mut leaves);
    let not_number =
        |v: &Value| tensor::invalid(format!("input '{name}': data holds {v}, not a number"));
    if float {
        leaves
            .iter()
            .map(|v| v.as_f64().map(|f| f as f32).ok_or_else(|| not_number(v)))
            .collect::<Result<_, _>>()
            .map(Data::F32)
    } else {
        leaves
            .iter()
            .map(|v| v.as_u64().ok_or_else(|| not_number(v)))
            .collect::<Result<_, _>>()
            .map(Data::Uint)
    }
}

fn flag(parameters: &Map<String, Value>, key: &str) -> bool {
    parameters
        .get(key)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

async fn infer(s: S, Path(model): Path<String>, headers: HeaderMap, body: Body) -> Response {
    infer_for(s.0, model, String::new(), headers, body).await
}
async fn infer_v(
    s: S,
    Path((model, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer_for(s.0, model, v, headers, body).await
}

async fn infer_for(
    state: Shared,
    model: String,
    version: String,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let arrived = Instant::now();
    let _admitted = match state.admit(PROTOCOL, arrived) {
        Ok(a) => a,
        Err(e) => return infer_error(e),
    };
    let parsed = async {
        find(&state, &model, &version)?;
        if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
            if encoding != "identity" {
                return Err(tensor::invalid(format!(
                    "Content-Encoding {encoding:?} is not supported; send the body uncompressed"
                )));
            }
        }
        let header_length = match headers.get(HEADER_LENGTH) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|t| t.trim().parse::<usize>().ok())
                    .ok_or_else(|| {
                        tensor::invalid(format!(
                            "header Inference-Header-Content-Length is {v:?}, not a byte count"
                        ))
                    })?,
            ),
        };
        let bytes = read_body(body, state.max_body).await?;
        let (json_part, mut binary) = match header_length {
            Some(n) if n > bytes.len() => {
                return Err(tensor::invalid(format!(
                    "Inference-Header-Content-Length is {n}, but the body has only {} bytes",
                    bytes.len()
                )))
            }
            Some(n) => (bytes.slice(..n), bytes.slice(n..)),
            None => (bytes.clone(), Bytes::new()),
        };
        let request: InferRequest = serde_json::from_slice(&json_part)
            .map_err(|e| tensor::invalid(format!("the inference request is not valid JSON for the protocol: {e}")))?;
        tensor::one_input(&state.model, request.inputs.len())?;
        let input = &request.inputs[0];
        let input_batch = match input.parameters.get("binary_data_size") {
            Some(size) => {
                let size = size.as_u64().ok_or_else(|| {
                    tensor::invalid(format!(
                        "input '{}': binary_data_size is {size}, not a byte count",
                        input.name
                    ))
                })? as usize;
                if size > binary.len() {
                    return Err(tensor::invalid(format!(
                        "input '{}': binary_data_size is {size}, but only {} bytes of binary data follow the JSON header",
                        input.name,
                        binary.len()
                    )));
                }
                let raw = binary.split_to(size);
                tensor::graph_input(&state.model, &input.name, &input.datatype, &input.shape, Data::Raw(&raw))?
            }
            None => {
                let data = input.data.as_ref().ok_or_else(|| {
                    tensor::invalid(format!(
                        "input '{}' has neither `data` nor `parameters.binary_data_size`",
                        input.name
                    ))
                })?;
                let float = input.datatype == "FP32";
                let values = json_values(&input.name, data, float)?;
                tensor::graph_input(&state.model, &input.name, &input.datatype, &input.shape, values)?
            }
        };
        if !binary.is_empty() {
            return Err(tensor::invalid(format!(
                "{} bytes of binary data are left over after the inputs' binary_data_size",
                binary.len()
            )));
        }
        let names: Vec<&str> = request.outputs.iter().map(|o| o.name.as_str()).collect();
        tensor::requested(&state.model, &names)?;
        Ok((request, input_batch))
    }
    .await;
    let (request, input) = match parsed {
        Ok(ok) => ok,
        Err(e) => {
            state.invalid(PROTOCOL, arrived);
            return bad(e);
        }
    };
    let done = match state.infer(input, PROTOCOL, arrived).await {
        Ok(done) => done,
        Err(e) => return infer_error(e),
    };
    // Which outputs, and which of them as binary data.
    let all_binary = flag(&request.parameters, "binary_data_output");
    let chosen: Vec<(&crate::model::Tensor, bool)> = if request.outputs.is_empty() {
        state
            .model
            .outputs
            .iter()
            .map(|t| (t, all_binary))
            .collect()
    } else {
        request
            .outputs
            .iter()
            .map(|o| {
                let binary = o
                    .parameters
                    .get("binary_data")
                    .and_then(Value::as_bool)
                    .unwrap_or(all_binary);
                (state.model.output(&o.name).expect("checked"), binary)
            })
            .collect()
    };
    let mut outputs = vec![];
    let mut binary = Vec::new();
    for (t, as_binary) in chosen {
        let out = tensor::output(t, &done.outputs);
        let mut entry =
            json!({"name": t.name, "datatype": crate::model::datatype(t.elem), "shape": out.shape});
        if as_binary {
            entry["parameters"] = json!({"binary_data_size": out.raw.len()});
            binary.extend_from_slice(&out.raw);
        } else {
            entry["data"] = out.json_data();
        }
        outputs.push(entry);
    }
    let mut response = json!({
        "model_name": state.model.name,
        "model_version": state.model.version,
        "outputs": outputs,
    });
    if let Some(id) = request.id {
        response["id"] = id.into();
    }
    let header_bytes = serde_json::to_vec(&response).expect("JSON values serialise");
    if binary.is_empty() {
        return ([(header::CONTENT_TYPE, "application/json")], header_bytes).into_response();
    }
    let length = header_bytes.len();
    let mut body = header_bytes;
    body.extend_from_slice(&binary);
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r.headers_mut()
        .insert(HEADER_LENGTH, HeaderValue::from(length));
    r
}

/// Scores `img` tile by tile through the batcher, at most a full batch of tiles per run.
async fn run_tiled(
    state: &State,
    img: &image::RgbImage,
    options: &TileOptions,
    arrived: Instant,
) -> Result<Tiled, InferError> {
    let spec = &state.info.spec;
    let size = spec.image_size;
    let mut tiled = {
        let _core = state.cpu_stages.acquire().await.expect("never closed");
        tokio::task::block_in_place(|| TiledImage::new(img, size, options, spec.preprocess.resize))
    };
    let corners = tiled.corners();
    for chunk in corners.chunks(state.model.max_batch.max(1)) {
        let input = {
            let _core = state.cpu_stages.acquire().await.expect("never closed");
            tokio::task::block_in_place(|| {
                let crops = tiled.crops(chunk);
                dlvp_runtime::preprocess::graph_input(
                    &crops,
                    size,
                    &spec.preprocess,
                    state.info.input,
                )
            })
        };
        let done = state.infer(input, PROTOCOL, arrived).await?;
        let out = &done.outputs;
        for (i, &corner) in chunk.iter().enumerate() {
            let map = out
                .anomaly_map
                .index_axis(ndarray::Axis(0), i)
                .index_axis(ndarray::Axis(0), 0)
                .to_owned()
                .into_dimensionality::<ndarray::Ix2>()
                .expect("[S, S]");
            let topk = out
                .topk_indices
                .index_axis(ndarray::Axis(0), i)
                .iter()
                .copied()
                .collect();
            tiled.add(corner, out.anomaly_score[[i]], &map, topk);
        }
    }
    Ok(tokio::task::block_in_place(|| tiled.finish()))
}

async fn detect(s: S, request: Request) -> Response {
    let state = s.0;
    let arrived = Instant::now();
    let _admitted = match state.admit(PROTOCOL, arrived) {
        Ok(a) => a,
        Err(e) => return infer_error(e),
    };
    // The query is checked before the body is read: a refused request costs no upload.
    let q = match DetectQuery::parse(request.uri(), state.info.thresholds.as_ref()) {
        Ok(q) => q,
        Err(e) => {
            state.invalid(PROTOCOL, arrived);
            return bad(e);
        }
    };
    let tiling = q.tile;
    let read = async {
        let multipart = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        if !multipart {
            let bytes = read_body(request.into_body(), state.max_body).await?;
            return Ok((bytes, None));
        }
        let mut form = Multipart::from_request(request, &()).await.map_err(|e| {
            tensor::invalid(format!("reading the multipart form: {}", e.body_text()))
        })?;
        loop {
            let field = form.next_field().await.map_err(|e| {
                let too_large = e.status() == StatusCode::PAYLOAD_TOO_LARGE;
                BadRequest {
                    kind: if too_large {
                        BadKind::TooLarge
                    } else {
                        BadKind::Invalid
                    },
                    message: if too_large {
                        format!(
                            "the request body is larger than the server's limit of {} bytes",
                            state.max_body
                        )
                    } else {
                        format!("reading the multipart form: {}", e.body_text())
                    },
                }
            })?;
            let Some(field) = field else {
                return Err(tensor::invalid("the multipart form has no file field"));
            };
            if field.file_name().is_none() && !matches!(field.name(), Some("image" | "file")) {
                continue;
            }
            let file_name = field.file_name().map(str::to_string);
            let bytes = field.bytes().await.map_err(|e| BadRequest {
                kind: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    BadKind::TooLarge
                } else {
                    BadKind::Invalid
                },
                message: format!("reading the multipart file: {}", e.body_text()),
            })?;
            return Ok((bytes, file_name));
        }
    };
    let (bytes, file_name) = match read.await {
        Ok(r) => r,
        Err(e) => {
            state.invalid(PROTOCOL, arrived);
            return bad(e);
        }
    };
    let label = q
        .name
        .clone()
        .or(file_name)
        .unwrap_or_else(|| "request".into());
    if bytes.is_empty() {
        state.invalid(PROTOCOL, arrived);
        return error(
            StatusCode::BAD_REQUEST,
            "the request has no image (empty body)",
        );
    }
    let prepared = {
        // Held until the decode is done: at most one per core.
        let _core = state.cpu_stages.acquire().await.expect("never closed");
        let state = Arc::clone(&state);
        let label = label.clone();
        let tiled = tiling.is_some();
        tokio::task::spawn_blocking(move || {
            let name = std::path::PathBuf::from(&label);
            let img =
                dlvp_runtime::preprocess::decode_rgb8_limited(&bytes, &name, state.max_pixels)
                    .map_err(|e| BadRequest {
                        kind: match e.kind {
                            ImageErrorKind::TooLarge { .. } => BadKind::TooLarge,
                            _ => BadKind::Invalid,
                        },
                        message: e.to_string(),
                    })?;
            let spec = &state.info.spec;
            // A tiled request prepares its tiles later, a batch at a time.
            let input = (!tiled).then(|| {
                dlvp_runtime::preprocess::graph_input(
                    &[&img],
                    spec.image_size,
                    &spec.preprocess,
                    state.info.input,
                )
            });
            Ok::<_, BadRequest>((img, input))
        })
        .await
    };
    let (img, input) = match prepared {
        Ok(Ok(ok)) => ok,
        Ok(Err(e)) => {
            state.invalid(PROTOCOL, arrived);
            return bad(e);
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let s = state.info.spec.image_size;
    // The score, the best Top-K, the map (S×S, or at the image's size when tiled) and the tiles.
    let (score, topk, map, tiles) = match (&tiling, input) {
        (Some(options), _) => match run_tiled(&state, &img, options, arrived).await {
            Ok(t) => {
                let best = t
                    .tiles
                    .iter()
                    .max_by(|a, b| a.score.total_cmp(&b.score))
                    .map(|b| b.topk.clone())
                    .unwrap_or_default();
                (t.score, best, t.map, Some(t.tiles))
            }
            Err(e) => return infer_error(e),
        },
        (None, Some(input)) => {
            let done = match state.infer(input, PROTOCOL, arrived).await {
                Ok(done) => done,
                Err(e) => return infer_error(e),
            };
            let map = done
                .outputs
                .anomaly_map
                .to_shape((s, s))
                .expect("[1, 1, S, S]")
                .to_owned();
            let topk: Vec<i64> = done.outputs.topk_indices.iter().copied().collect();
            (done.outputs.anomaly_score[[0]], topk, map, None)
        }
        (None, None) => unreachable!("an untiled request prepares its input"),
    };
    let mut answer = json!({
        "image": label,
        "score": score,
        "topk": topk,
        "backend": state.backend,
        "provider": state.provider,
    });
    if let Some(tiles) = &tiles {
        answer["tiles"] = tiles
            .iter()
            .map(|t| json!({"x": t.x, "y": t.y, "side": t.side, "score": t.score, "topk": t.topk}))
            .collect::<Vec<_>>()
            .into();
    }
    // As `dlvp detect` decides: the graph's stored threshold unless the request gives one.
    let decider = q.decider;
    if let Some(d) = &decider {
        let verdict = d.verdict(score);
        answer["decision"] = verdict.name().into();
        answer["threshold"] = d.image.into();
        answer["label"] = verdict.label().into();
    }
    let pixel = q.mask.then(|| decider.map(|d| d.pixel)).flatten();
    if q.map || pixel.is_some() {
        let want_map = q.map;
        let _core = state.cpu_stages.acquire().await.expect("never closed");
        let pngs = tokio::task::spawn_blocking(move || {
            full_size_pngs(&map, img.width(), img.height(), want_map, pixel)
        })
        .await;
        match pngs {
            Ok(Ok(pngs)) => {
                for (key, png) in pngs {
                    answer[key] = base64::engine::general_purpose::STANDARD.encode(png).into();
                }
            }
            Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    Json(answer).into_response()
}

/// The map at the image's size as `dlvp detect --out` writes it (16-bit grayscale PNG), and the
/// mask above `pixel` (8-bit), each when asked for.
fn full_size_pngs(
    map: &ndarray::Array2<f32>,
    width: u32,
    height: u32,
    want_map: bool,
    pixel: Option<f32>,
) -> Result<Vec<(&'static str, Vec<u8>)>, String> {
    use dlvp_runtime::postprocess::{map_u16, mask, png_bytes, resize_map};
    let full = resize_map(map, width as usize, height as usize);
    let mut pngs = Vec::new();
    if want_map {
        pngs.push((
            "map_png",
            png_bytes(map_u16(&full)).map_err(|e| e.to_string())?,
        ));
    }
    if let Some(p) = pixel {
        pngs.push((
            "mask_png",
            png_bytes(mask(&full, p)).map_err(|e| e.to_string())?,
        ));
    }
    Ok(pngs)
}
