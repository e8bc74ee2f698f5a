//! The served model as the protocol describes it: name, version, the input and the three outputs
//! with their per-request shapes, and the metadata and configuration documents (HTTP JSON and
//! gRPC protobuf) built from one description.
//!
//! The shapes are those of the Triton repository `dlvp export --triton-repo` writes
//! (model-spec/README.md "Graph contract" in Triton's terms), so a client written for a Triton
//! deployment works unchanged against `dlvp serve`: `max_batch_size > 0`, every tensor's first
//! dimension is the batch, and `anomaly_score` is `[B, 1]` (the graph's `[B]`, declared `dims: [1]`
//! with `reshape { shape: [] }`); both take these terms from `dlvp_contract::triton`.

use dlvp_contract::graph::{self as contract, ElemType};
use dlvp_contract::InputKind;
use dlvp_runtime::metadata::{ModelInfo, Thresholds};
use serde_json::{json, Value};

use crate::kserve;

/// The protocol's datatype names.
pub use dlvp_contract::triton::protocol_datatype as datatype;
/// One tensor as served: its per-request dims (after the batch), in Triton's terms.
pub use dlvp_contract::triton::TritonTensor as Tensor;

/// Triton's configuration type of an element type: its name, and its number in the protobuf.
fn config_type(elem: ElemType) -> (&'static str, i32) {
    let number = match elem {
        ElemType::F32 => kserve::data_type::FP32,
        ElemType::U8 => kserve::data_type::UINT8,
        ElemType::I64 => kserve::data_type::INT64,
    };
    (dlvp_contract::triton::config_data_type(elem), number)
}

/// A tensor's entry in the model metadata: the batch as -1, then its dims.
fn tensor_metadata(t: &Tensor) -> Value {
    let mut shape = vec![-1i64];
    shape.extend(t.dims.iter().map(|&d| d as i64));
    json!({"name": t.name, "datatype": datatype(t.elem), "shape": shape})
}

/// Everything the protocol says about the one model `dlvp serve` runs.
#[derive(Debug, Clone)]
pub struct ServedModel {
    pub name: String,
    pub version: String,
    pub kind: InputKind,
    pub input: Tensor,
    pub outputs: Vec<Tensor>,
    pub max_batch: usize,
    pub queue_delay_us: u64,
    /// `KIND_GPU` when the backend runs on a GPU.
    pub gpu: bool,
    /// The graph's decision thresholds (`dlvp threshold`), stated as model parameters.
    pub thresholds: Option<Thresholds>,
}

/// The platform Triton would serve the graph with.
pub const PLATFORM: &str = "onnxruntime_onnx";

impl ServedModel {
    pub fn new(
        name: &str,
        info: &ModelInfo,
        max_batch: usize,
        queue_delay_us: u64,
        gpu: bool,
    ) -> ServedModel {
        let outputs = contract::outputs(&info.spec);
        ServedModel {
            name: name.to_string(),
            version: "1".into(),
            kind: info.input,
            input: Tensor::from_desc(&info.input.desc(info.spec.image_size)),
            outputs: outputs.iter().map(Tensor::from_desc).collect(),
            max_batch,
            queue_delay_us,
            gpu,
            thresholds: info.thresholds,
        }
    }

    /// The thresholds as parameters under their `dlvp.threshold.*` metadata keys, values as the
    /// graph stores them (strings, as Triton's `ModelParameter` holds them).
    pub fn parameters(&self) -> Vec<(&'static str, String)> {
        self.thresholds
            .as_ref()
            .map(dlvp_runtime::metadata::threshold_props)
            .unwrap_or_default()
    }

    /// Whether a request's model version addresses this model ("" means the latest).
    pub fn has_version(&self, version: &str) -> bool {
        version.is_empty() || version == self.version
    }

    pub fn output(&self, name: &str) -> Option<&Tensor> {
        self.outputs.iter().find(|t| t.name == name)
    }

    /// `GET /v2/models/{name}`.
    pub fn metadata_json(&self) -> Value {
        let mut metadata = json!({
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": [tensor_metadata(&self.input)],
            "outputs": self.outputs.iter().map(tensor_metadata).collect::<Vec<_>>(),
        });
        // The protocol's optional model `parameters`: the decision thresholds, as numbers.
        if let Some(t) = &self.thresholds {
            metadata["parameters"] = json!({
                contract::META_THRESHOLD_IMAGE: t.image,
                contract::META_THRESHOLD_PIXEL: t.pixel,
                contract::META_THRESHOLD_FALSE_ALARM: t.false_alarm,
                contract::META_THRESHOLD_IMAGES: t.images,
                contract::META_THRESHOLD_TILING:
                    dlvp_runtime::metadata::tiling_value(t.tiling.as_ref()),
            });
        }
        metadata
    }

    pub fn metadata_proto(&self) -> kserve::ModelMetadataResponse {
        let tensor = |t: &Tensor| kserve::TensorMetadata {
            name: t.name.into(),
            datatype: datatype(t.elem).into(),
            shape: std::iter::once(-1)
                .chain(t.dims.iter().map(|&d| d as i64))
                .collect(),
        };
        kserve::ModelMetadataResponse {
            name: self.name.clone(),
            versions: vec![self.version.clone()],
            platform: PLATFORM.into(),
            inputs: vec![tensor(&self.input)],
            outputs: self.outputs.iter().map(tensor).collect(),
        }
    }

    fn kind_name(&self) -> (&'static str, i32) {
        if self.gpu {
            ("KIND_GPU", kserve::instance_kind::KIND_GPU)
        } else {
            ("KIND_CPU", kserve::instance_kind::KIND_CPU)
        }
    }

    /// `GET /v2/models/{name}/config`: Triton's model configuration as JSON (its field names).
    pub fn config_json(&self) -> Value {
        let mut config;
        let output = |t: &Tensor| {
            let mut o = json!({"name": t.name, "data_type": config_type(t.elem).0, "dims": t.dims});
            if t.scalar_per_item {
                o["reshape"] = json!({"shape": []});
            }
            o
        };
        config = json!({
            "name": self.name,
            "platform": PLATFORM,
            "backend": "onnxruntime",
            "max_batch_size": self.max_batch,
            "input": [{"name": self.input.name, "data_type": config_type(self.input.elem).0, "dims": self.input.dims}],
            "output": self.outputs.iter().map(output).collect::<Vec<_>>(),
            "dynamic_batching": {"max_queue_delay_microseconds": self.queue_delay_us},
            "instance_group": [{"name": self.name, "kind": self.kind_name().0, "count": 1}],
        });
        let parameters = self.parameters();
        if !parameters.is_empty() {
            config["parameters"] = parameters
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!({"string_value": v})))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        config
    }

    pub fn config_proto(&self) -> kserve::ModelConfig {
        let dims = |t: &Tensor| t.dims.iter().map(|&d| d as i64).collect::<Vec<_>>();
        kserve::ModelConfig {
            name: self.name.clone(),
            platform: PLATFORM.into(),
            backend: "onnxruntime".into(),
            max_batch_size: self.max_batch as i32,
            input: vec![kserve::ModelInput {
                name: self.input.name.into(),
                data_type: config_type(self.input.elem).1,
                dims: dims(&self.input),
            }],
            output: self
                .outputs
                .iter()
                .map(|t| kserve::ModelOutput {
                    name: t.name.into(),
                    data_type: config_type(t.elem).1,
                    dims: dims(t),
                    reshape: t
                        .scalar_per_item
                        .then(|| kserve::ModelTensorReshape { shape: vec![] }),
                })
                .collect(),
            instance_group: vec![kserve::ModelInstanceGroup {
                name: self.name.clone(),
                count: 1,
                kind: self.kind_name().1,
            }],
            dynamic_batching: Some(kserve::ModelDynamicBatching {
                preferred_batch_size: vec![],
                max_queue_delay_microseconds: self.queue_delay_us,
            }),
            parameters: self
                .parameters()
                .into_iter()
                .map(|(k, v)| (k.to_string(), kserve::ModelParameter { string_value: v }))
                .collect(),
        }
    }
}
