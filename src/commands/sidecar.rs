//! The JSON written beside an exported model (`MODEL.onnx.json`) for C++ and other consumers
//! that would rather not read ONNX metadata: input and output names, dtypes, shapes and meaning,
//! the preprocessing contract (model-spec/README.md §1 and "Graph contract"), and a hash of the
//! spec. It says what the graph's own metadata says; the graph stays the source of truth.

use dlvp_exporter::model::{
    GRAPH_FORMAT, META_FORMAT, META_IMAGE_SIZE, META_INPUT, META_MEAN, META_RESIZE, META_SPEC,
    META_STD,
};
use dlvp_exporter::Spec;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub struct SidecarInput<'a> {
    pub spec: &'a Spec,
    pub model_file: &'a str,
    pub external_data: Option<&'a str>,
    pub embed_preprocess: bool,
    pub fp16: bool,
}

pub fn sidecar(s: &SidecarInput) -> Value {
    let spec = s.spec;
    let size = spec.image_size;
    let input = if s.embed_preprocess {
        json!({
            "name": "image_u8", "dtype": "uint8", "shape": ["batch", size, size, 3], "layout": "NHWC",
            "meaning": "RGB pixels already resized to image_size × image_size; the graph normalises them",
        })
    } else {
        json!({
            "name": "image", "dtype": "float32", "shape": ["batch", 3, size, size], "layout": "NCHW",
            "meaning": "RGB resized to image_size × image_size, then (x / 255 − mean) / std per channel",
        })
    };
    let spec_yaml = spec.to_yaml();
    json!({
        "format": GRAPH_FORMAT,
        "model": s.model_file,
        "external_data": s.external_data,
        "name": spec.name,
        "spec_sha256": format!("{:x}", Sha256::digest(spec_yaml.as_bytes())),
        "precision": if s.fp16 { "fp16" } else { "fp32" },
        "inputs": [input],
        "outputs": [
            {"name": "anomaly_score", "dtype": "float32", "shape": ["batch"],
             "meaning": "image anomaly probability in [0, 1]"},
            {"name": "anomaly_map", "dtype": "float32", "shape": ["batch", 1, size, size],
             "meaning": "per-pixel anomaly probability in [0, 1] at the input's size; resize it to the original image"},
            {"name": "topk_indices", "dtype": "int64", "shape": ["batch", spec.slfs.top_k],
             "meaning": format!("patch indices (row-major in the {g}×{g} grid) SLFS selected, highest first", g = spec.grid())},
        ],
        "preprocess": {
            "image_size": size,
            "color": "RGB (grayscale replicated, alpha dropped, 16-bit reduced to the high byte)",
            "resize": spec.preprocess.resize,
            "resize_note": "Pillow's filter (antialiased when shrinking); other libraries' kernels differ slightly",
            "mean": spec.preprocess.mean,
            "std": spec.preprocess.std,
            "in_graph": s.embed_preprocess,
        },
        "metadata_keys": [META_FORMAT, META_SPEC, META_IMAGE_SIZE, META_MEAN, META_STD, META_RESIZE, META_INPUT],
    })
}
