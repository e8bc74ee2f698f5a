//! The JSON written beside an exported model (`MODEL.onnx.json`) for C++ and other consumers
//! that would rather not read ONNX metadata: input and output names, dtypes, shapes and meaning,
//! the preprocessing contract (model-spec/README.md §1 and "Graph contract"), and a hash of the
//! spec. It says what the graph's own metadata says; the graph stays the source of truth.

use dlvp_contract::graph::{
    self as contract, InputKind, Precision, TensorDesc, GRAPH_FORMAT, META_FORMAT, META_IMAGE_SIZE,
    META_INPUT, META_MEAN, META_PRECISION, META_RESIZE, META_SPEC, META_STD, META_TARGET,
};
use dlvp_contract::Spec;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub struct SidecarInput<'a> {
    pub spec: &'a Spec,
    pub model_file: &'a str,
    pub external_data: Option<&'a str>,
    pub input: InputKind,
    pub precision: Precision,
}

/// A tensor of the contract as the sidecar lists it: the batch dimension is `"batch"`.
fn tensor(desc: &TensorDesc) -> Value {
    let shape: Vec<Value> = desc
        .dims
        .iter()
        .map(|d| match d {
            contract::Dim::Batch => json!("batch"),
            contract::Dim::Fixed(n) => json!(n),
        })
        .collect();
    let mut entry = json!({"name": desc.name, "dtype": desc.elem.name(), "shape": shape});
    if let Some(layout) = desc.layout {
        entry["layout"] = json!(layout);
    }
    entry["meaning"] = json!(desc.meaning);
    entry
}

pub fn sidecar(s: &SidecarInput) -> Value {
    let spec = s.spec;
    let size = spec.image_size;
    let spec_yaml = spec.to_yaml();
    json!({
        "format": GRAPH_FORMAT,
        "model": s.model_file,
        "external_data": s.external_data,
        "name": spec.name,
        "spec_sha256": format!("{:x}", Sha256::digest(spec_yaml.as_bytes())),
        "precision": s.precision.name(),
        "inputs": [tensor(&s.input.desc(size))],
        "outputs": contract::outputs(spec).iter().map(tensor).collect::<Vec<_>>(),
        "preprocess": {
            "image_size": size,
            "color": "RGB (grayscale replicated, alpha dropped, 16-bit reduced to the high byte)",
            "resize": spec.preprocess.resize,
            "resize_note": "Pillow's filter (antialiased when shrinking); other libraries' kernels differ slightly",
            "mean": spec.preprocess.mean,
            "std": spec.preprocess.std,
            "in_graph": s.input == InputKind::ImageU8,
        },
        "metadata_keys": [META_FORMAT, META_SPEC, META_IMAGE_SIZE, META_MEAN, META_STD, META_RESIZE, META_INPUT,
                          META_PRECISION, META_TARGET],
    })
}
