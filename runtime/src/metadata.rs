//! What the exporter wrote into a graph's `metadata_props` (the keys of
//! [`dlvp_contract::graph`]): the spec, hence the input size and preprocessing, the input kind
//! and the precision.

use std::path::Path;

use dlvp_contract::graph::{
    self as contract, ElemType, InputKind, Precision, GRAPH_FORMAT, META_FORMAT, META_INPUT,
    META_INT8_WEIGHT_RANGE, META_PRECISION, META_SPEC, META_THRESHOLD_FALSE_ALARM,
    META_THRESHOLD_IMAGE, META_THRESHOLD_IMAGES, META_THRESHOLD_PIXEL,
};
use dlvp_contract::Spec;

use crate::tile_options::TileOptions;
use dlvp_onnx_proto as pb;

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
    pub input: InputKind,
    /// `dlvp.precision`: fp32 unless the graph says fp16.
    pub precision: Precision,
    /// An int8 graph whose weights use the full int8 range (`dlvp.int8.weight_range` `full`, or
    /// absent: exports before the key were full-range): exact only on CPUs whose int8 kernels
    /// accumulate in 32 bits ([`crate::int8_kernels`]).
    pub int8_full_range: bool,
    /// The decision thresholds `dlvp threshold` stored, if any.
    pub thresholds: Option<Thresholds>,
}

/// Decision thresholds calibrated on a line's good images (`dlvp.threshold.*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// An `anomaly_score` above it is NG.
    pub image: f32,
    /// An `anomaly_map` value above it belongs to the mask.
    pub pixel: f32,
    /// The false-alarm rate both guarantee at most on good images like the calibration's.
    pub false_alarm: f64,
    /// Good images they were calibrated on.
    pub images: usize,
    /// The tiling the images were scored with (`None`: whole images, resized).
    pub tiling: Option<TileOptions>,
}

/// `none`, or the tile options as [`TileOptions::describe`] writes them.
pub fn tiling_value(tiling: Option<&TileOptions>) -> String {
    tiling.map_or_else(|| "none".to_string(), TileOptions::describe)
}

/// Reads [`tiling_value`]'s text back (`None`: not such a text, or options that cannot tile).
fn parse_tiling(text: &str) -> Option<Option<TileOptions>> {
    if text == "none" {
        return Some(None);
    }
    TileOptions::parse(text).map(Some)
}

/// Reads the metadata of ONNX `bytes` that came from `path`.
pub fn read(bytes: &[u8], path: &Path) -> Result<ModelInfo, MetadataError> {
    let fail = |message: String| MetadataError {
        path: path.to_path_buf(),
        message,
    };
    // The structure only: a full decode would copy every weight.
    let model = crate::onnx_head::ModelHead::decode_from(bytes)
        .map_err(|e| fail(format!("not an ONNX model: {e}")))?
        .to_model_proto();
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
    let input = optional(
        get(META_INPUT),
        META_INPUT,
        InputKind::from_name,
        "\"image\" or \"image_u8\"",
    )
    .map_err(fail)?;
    check_input(&model, input, spec.image_size).map_err(fail)?;
    check_outputs(&model, &spec).map_err(fail)?;
    let precision = optional(
        get(META_PRECISION),
        META_PRECISION,
        Precision::from_name,
        "\"fp32\" or \"fp16\"",
    )
    .map_err(fail)?;
    let int8_full_range = precision == Precision::Int8
        && match get(META_INT8_WEIGHT_RANGE) {
            None | Some("full") => true,
            Some("reduced") => false,
            Some(other) => {
                return Err(fail(format!(
                "metadata {META_INT8_WEIGHT_RANGE} is {other:?}; expected \"reduced\" or \"full\""
            )))
            }
        };
    let thresholds = match get(META_THRESHOLD_IMAGE) {
        None => None,
        Some(image) => {
            let number = |key: &str, text: Option<&str>| -> Result<f64, String> {
                text.ok_or_else(|| {
                    format!("metadata {key} is missing beside {META_THRESHOLD_IMAGE}")
                })?
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("metadata {key} is not a number"))
            };
            // The f32 thresholds parsed as f32: the nearest to the decimal written, which is the
            // f32 calibrated (the C++ detector reads them with strtof for the same reason). A
            // hand-edited or corrupted one that could not decide (NaN, outside [0, 1)) is refused
            // here, when the graph loads, never at the first part it passes.
            let single = |key: &str, text: Option<&str>| -> Result<f32, String> {
                number(key, text)?;
                let value = text
                    .and_then(|t| t.parse::<f32>().ok())
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| format!("metadata {key} is not a number"))?;
                crate::threshold_range::check_threshold(value)
                    .map_err(|e| format!("metadata {key}: {e}"))
            };
            let false_alarm = number(META_THRESHOLD_FALSE_ALARM, get(META_THRESHOLD_FALSE_ALARM))
                .map_err(fail)?;
            if !(false_alarm > 0.0 && false_alarm < 1.0) {
                return Err(fail(format!(
                    "metadata {META_THRESHOLD_FALSE_ALARM} is {false_alarm}; expected a rate between 0 and 1 (exclusive)"
                )));
            }
            let images = number(META_THRESHOLD_IMAGES, get(META_THRESHOLD_IMAGES)).map_err(fail)?;
            if images < 1.0 || images.fract() != 0.0 || images > u32::MAX as f64 {
                return Err(fail(format!(
                    "metadata {META_THRESHOLD_IMAGES} is {images}; expected a whole number of images, at least 1"
                )));
            }
            Some(Thresholds {
                image: single(META_THRESHOLD_IMAGE, Some(image)).map_err(fail)?,
                pixel: single(META_THRESHOLD_PIXEL, get(META_THRESHOLD_PIXEL)).map_err(fail)?,
                false_alarm,
                images: images as usize,
                tiling: match get(contract::META_THRESHOLD_TILING) {
                    None => None,
                    Some(text) => parse_tiling(text).ok_or_else(|| {
                        fail(format!(
                            "metadata {} is {text:?}; expected \"none\" or \"scale S, overlap F\" (S in (0, 1], F in [0, 0.9])",
                            contract::META_THRESHOLD_TILING
                        ))
                    })?,
                },
            })
        }
    };
    Ok(ModelInfo {
        spec,
        input,
        precision,
        int8_full_range,
        thresholds,
    })
}

/// How the thresholds were calibrated, beside their values (the `dlvp.threshold.*` keys a
/// reader does not need to decide).
#[derive(Debug, Clone)]
pub struct ThresholdSource {
    /// SHA-256 of the good images (paths as given, lengths, bytes, in order).
    pub images_sha256: String,
    /// `resize` and the backend that scored them.
    pub scored_with: String,
    /// How far the thresholds stand from every calibration score at least (included in them).
    pub margin: f32,
}

/// The decision values of `thresholds` under their `dlvp.threshold.*` keys, as the graph stores
/// them (what a Triton config's or a server's model parameters repeat).
pub fn threshold_props(thresholds: &Thresholds) -> Vec<(&'static str, String)> {
    vec![
        (META_THRESHOLD_IMAGE, thresholds.image.to_string()),
        (META_THRESHOLD_PIXEL, thresholds.pixel.to_string()),
        (
            META_THRESHOLD_FALSE_ALARM,
            thresholds.false_alarm.to_string(),
        ),
        (META_THRESHOLD_IMAGES, thresholds.images.to_string()),
        (
            contract::META_THRESHOLD_TILING,
            tiling_value(thresholds.tiling.as_ref()),
        ),
    ]
}

/// ONNX `bytes` with `thresholds` stored in their `dlvp.threshold.*` keys (the ones [`read`]
/// reads back into [`ModelInfo::thresholds`]); nothing else changes ([`with_props`]).
pub fn with_thresholds(
    bytes: &[u8],
    thresholds: &Thresholds,
    source: &ThresholdSource,
) -> Result<Vec<u8>, prost::DecodeError> {
    use dlvp_contract::graph::{
        META_THRESHOLD_IMAGES_SHA256, META_THRESHOLD_MARGIN, META_THRESHOLD_SCORED_WITH,
    };
    let mut props = threshold_props(thresholds);
    props.push((META_THRESHOLD_IMAGES_SHA256, source.images_sha256.clone()));
    props.push((META_THRESHOLD_SCORED_WITH, source.scored_with.clone()));
    props.push((META_THRESHOLD_MARGIN, source.margin.to_string()));
    with_props(bytes, &props)
}

/// ONNX `bytes` with the metadata `props` set: each key's value replaced where the model has the
/// key, else appended in the order given. Nothing else changes: the graph, its weights and the
/// other keys are re-encoded as they were (every field of ONNX's messages is kept).
pub fn with_props(bytes: &[u8], props: &[(&str, String)]) -> Result<Vec<u8>, prost::DecodeError> {
    use prost::Message;
    let mut model = pb::ModelProto::decode(bytes)?;
    for (key, value) in props {
        match model.metadata_props.iter_mut().find(|p| p.key == *key) {
            Some(p) => p.value = value.clone(),
            None => model.metadata_props.push(pb::StringStringEntryProto {
                key: key.to_string(),
                value: value.clone(),
            }),
        }
    }
    Ok(model.encode_to_vec())
}

/// An optional metadata `value` of `key`: the default when absent, an error naming the value when
/// `parse` does not know it.
fn optional<T: Default>(
    value: Option<&str>,
    key: &str,
    parse: fn(&str) -> Option<T>,
    expected: &str,
) -> Result<T, String> {
    match value {
        None => Ok(T::default()),
        Some(v) => parse(v).ok_or_else(|| format!("metadata {key} is {v:?}; expected {expected}")),
    }
}

/// The graph's outputs must be the contract's, by name and in its order (backends that read
/// outputs by position rely on it): a graph edited after export fails here, naming what is
/// missing, rather than in a backend's first run.
fn check_outputs(model: &pb::ModelProto, spec: &Spec) -> Result<(), String> {
    let graph = model.graph.as_ref().ok_or("the model has no graph")?;
    let have: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let want: Vec<&str> = contract::outputs(spec).iter().map(|d| d.name).collect();
    if have == want {
        return Ok(());
    }
    let missing: Vec<&str> = want.iter().copied().filter(|w| !have.contains(w)).collect();
    Err(if missing.is_empty() {
        format!(
            "the graph's outputs are [{}]; a dlvp graph has [{}], in that order",
            have.join(", "),
            want.join(", ")
        )
    } else {
        format!(
            "the graph has no output {} (it has [{}]; a dlvp graph has [{}])",
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", "),
            have.join(", "),
            want.join(", ")
        )
    })
}

/// The graph's one input must be what its metadata promises: `image` f32 [B, 3, S, S] or
/// `image_u8` uint8 [B, S, S, 3], S the spec's image size (B may be symbolic). A graph edited
/// after export, or metadata copied onto another graph, fails here rather than inside a backend.
fn check_input(model: &pb::ModelProto, kind: InputKind, size: usize) -> Result<(), String> {
    use pb::tensor_proto::DataType;
    use pb::tensor_shape_proto::dimension::Value;
    let name = kind.name();
    let graph = model.graph.as_ref().ok_or("the model has no graph")?;
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(&i.name.as_str()))
        .collect();
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let [input] = inputs[..] else {
        return Err(format!(
            "the graph has inputs {names:?}; a dlvp graph has one, `{name}`"
        ));
    };
    if input.name != name {
        return Err(format!(
            "the graph's input is `{}`, but its metadata says `{name}`",
            input.name
        ));
    }
    let desc = kind.desc(size);
    let dtype = match desc.elem {
        ElemType::F32 => DataType::Float,
        ElemType::U8 => DataType::Uint8,
        ElemType::I64 => DataType::Int64,
    };
    let expected: Vec<Option<i64>> = desc
        .dims
        .iter()
        .map(|d| match d {
            contract::Dim::Batch => None,
            contract::Dim::Fixed(n) => Some(*n as i64),
        })
        .collect();
    let show = |dims: &[Option<i64>]| {
        let parts: Vec<String> = dims
            .iter()
            .map(|d| d.map_or("B".to_string(), |n| n.to_string()))
            .collect();
        format!("[{}]", parts.join(", "))
    };
    let Some(pb::type_proto::Value::TensorType(tensor)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(format!("input `{name}` is not a tensor"));
    };
    if tensor.elem_type != dtype as i32 {
        let found = DataType::try_from(tensor.elem_type)
            .map(|d| format!("{d:?}"))
            .unwrap_or_else(|_| tensor.elem_type.to_string());
        return Err(format!(
            "input `{name}` has element type {found}; a dlvp graph takes {dtype:?}"
        ));
    }
    let dims: Vec<Option<i64>> = tensor
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(Value::DimValue(n)) => Some(n),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let fits = dims.len() == 4
        && dims
            .iter()
            .zip(&expected)
            .all(|(found, want)| want.is_none() || found == want);
    if !fits {
        return Err(format!(
            "input `{name}` has shape {}, but the spec in its metadata (image_size {size}) needs {}",
            show(&dims),
            show(&expected)
        ));
    }
    Ok(())
}
