//! The gRPC side: KServe v2's `inference.GRPCInferenceService` (ServerLive, ServerReady,
//! ModelReady, ServerMetadata, ModelMetadata, ModelConfig, ModelInfer) on tonic, checked and
//! batched exactly as HTTP requests are (`tensor`, `State::infer`).
//!
//! Inputs come as `raw_input_contents` (what tritonclient sends) or typed `contents`; outputs go
//! back as `raw_output_contents`, in the order of the response's `outputs`. Errors: NOT_FOUND for
//! an unknown model or version, INVALID_ARGUMENT for a malformed request, UNAVAILABLE when the
//! queue is full or the server draining (ServerReady and ModelReady then answer false), DEADLINE_EXCEEDED after `--request-timeout-ms`,
//! INTERNAL when the model fails.

use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::kserve::*;
use crate::tensor::{self, BadKind, BadRequest, Data};
use crate::{InferError, State};

#[allow(clippy::all, non_camel_case_types)]
mod generated {
    include!(concat!(
        env!("OUT_DIR"),
        "/inference.GRPCInferenceService.rs"
    ));
}
use generated::g_r_p_c_inference_service_server::{
    GRPCInferenceService, GRPCInferenceServiceServer,
};

const PROTOCOL: &str = "grpc";

fn status(b: BadRequest) -> Status {
    match b.kind {
        BadKind::Invalid => Status::invalid_argument(b.message),
        BadKind::NotFound => Status::not_found(b.message),
        BadKind::TooLarge => Status::resource_exhausted(b.message),
    }
}

fn infer_status(e: InferError) -> Status {
    match &e {
        InferError::Refused(_) | InferError::Draining => Status::unavailable(e.to_string()),
        InferError::Timeout(_) => Status::deadline_exceeded(e.to_string()),
        InferError::Model(_) => Status::internal(e.to_string()),
    }
}

pub struct Service {
    state: Arc<State>,
}

impl Service {
    fn find(&self, name: &str, version: &str) -> Result<&State, Status> {
        let model = &self.state.model;
        if name != model.name {
            return Err(Status::not_found(format!(
                "Request for unknown model: '{name}' is not found (this server runs '{}')",
                model.name
            )));
        }
        if !model.has_version(version) {
            return Err(Status::not_found(format!(
                "Request for unknown model: '{name}' version {version} is not found (it has version {})",
                model.version
            )));
        }
        Ok(&self.state)
    }
}

/// The graph input of a ModelInfer request, checked.
fn input_of(
    state: &State,
    request: &ModelInferRequest,
) -> Result<dlvp_runtime::GraphInput, BadRequest> {
    tensor::one_input(&state.model, request.inputs.len())?;
    let input = &request.inputs[0];
    let data = if !request.raw_input_contents.is_empty() {
        if request.raw_input_contents.len() != 1 {
            return Err(tensor::invalid(format!(
                "{} raw_input_contents for 1 input",
                request.raw_input_contents.len()
            )));
        }
        Data::Raw(&request.raw_input_contents[0])
    } else {
        let contents = input.contents.as_ref().ok_or_else(|| {
            tensor::invalid(format!(
                "input '{}' has neither contents nor raw_input_contents",
                input.name
            ))
        })?;
        if input.datatype == "FP32" {
            Data::F32(contents.fp32_contents.clone())
        } else {
            Data::Uint(contents.uint_contents.iter().map(|&v| v as u64).collect())
        }
    };
    tensor::graph_input(
        &state.model,
        &input.name,
        &input.datatype,
        &input.shape,
        data,
    )
}

#[tonic::async_trait]
impl GRPCInferenceService for Service {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.state.drain.is_ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let r = request.into_inner();
        let ready = self.find(&r.name, &r.version).is_ok() && self.state.drain.is_ready();
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "dlvp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: vec!["model_configuration".into()],
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(
            self.find(&r.name, &r.version)?.model.metadata_proto(),
        ))
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(ModelConfigResponse {
            config: Some(self.find(&r.name, &r.version)?.model.config_proto()),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let arrived = Instant::now();
        let request = request.into_inner();
        let state = &self.state;
        let _admitted = state.admit(PROTOCOL, arrived).map_err(infer_status)?;
        let checked = self
            .find(&request.model_name, &request.model_version)
            .map_err(|s| (s, ()))
            .and_then(|_| {
                let input = input_of(state, &request).map_err(|b| (status(b), ()))?;
                let names: Vec<&str> = request.outputs.iter().map(|o| o.name.as_str()).collect();
                let chosen =
                    tensor::requested(&state.model, &names).map_err(|b| (status(b), ()))?;
                Ok((input, chosen))
            });
        let (input, chosen) = match checked {
            Ok(ok) => ok,
            Err((s, ())) => {
                state.invalid(PROTOCOL, arrived);
                return Err(s);
            }
        };
        let done = state
            .infer(input, PROTOCOL, arrived)
            .await
            .map_err(infer_status)?;
        let mut outputs = vec![];
        let mut raw = vec![];
        for t in chosen {
            let out = tensor::output(t, &done.outputs);
            outputs.push(InferOutputTensor {
                name: t.name.into(),
                datatype: crate::model::datatype(t.elem).into(),
                shape: out.shape.clone(),
                parameters: Default::default(),
                contents: None,
            });
            raw.push(out.raw);
        }
        Ok(Response::new(ModelInferResponse {
            model_name: state.model.name.clone(),
            model_version: state.model.version.clone(),
            id: request.id,
            parameters: Default::default(),
            outputs,
            raw_output_contents: raw,
        }))
    }
}

/// Serves the gRPC service on `listener` until `shutdown` completes, then finishes the calls in
/// flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let max = state.max_body;
    let service = GRPCInferenceServiceServer::new(Service { state })
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX);
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| e.to_string())
}
