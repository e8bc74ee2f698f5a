//! What the exporter wrote into a graph's `metadata_props` (the keys of
//! `dlvp_exporter::model`): the spec, hence the input size and preprocessing, and the input kind.

use std::path::Path;

use dlvp_exporter::model::{GRAPH_FORMAT, META_FORMAT, META_INPUT, META_SPEC};
use dlvp_exporter::Spec;
use prost::Message;
use tract_onnx::pb;

#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct MetadataError {
    pub path: std::path::PathBuf,
    pub message: String,
}

/// A dlvp graph's self-description.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub spec: Spec,
    /// `image` (normalised f32) or `image_u8`.
    pub input: String,
    /// `dlvp.precision`: `fp32` unless the graph says `fp16`.
    pub precision: String,
}

/// Reads the metadata of ONNX `bytes` that came from `path`.
pub fn read(bytes: &[u8], path: &Path) -> Result<ModelInfo, MetadataError> {
    let fail = |message: String| MetadataError {
        path: path.to_path_buf(),
        message,
    };
    let model =
        pb::ModelProto::decode(bytes).map_err(|e| fail(format!("not an ONNX model: {e}")))?;
    let get = |key: &str| {
        model
            .metadata_props
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    };
    match get(META_FORMAT) {
        Some(GRAPH_FORMAT) => {}
        Some(other) => {
            return Err(fail(format!(
                "metadata {META_FORMAT} is {other:?}; this version reads {GRAPH_FORMAT:?}"
            )))
        }
        None => {
            return Err(fail(format!(
                "not a dlvp graph: no {META_FORMAT} metadata (export it with `dlvp export`)"
            )))
        }
    }
    let spec_text =
        get(META_SPEC).ok_or_else(|| fail(format!("metadata {META_SPEC} is missing")))?;
    let spec = Spec::from_yaml(
        spec_text,
        &format!("{} (metadata {META_SPEC})", path.display()),
    )
    .map_err(|e| fail(e.to_string()))?;
    let input = get(META_INPUT).unwrap_or("image").to_string();
    let precision = get("dlvp.precision").unwrap_or("fp32").to_string();
    Ok(ModelInfo {
        spec,
        input,
        precision,
    })
}
