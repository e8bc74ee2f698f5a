//! The graph contract (model-spec/README.md, "Graph contract"): what every exported DLVP-CLIP
//! graph takes, returns and says about itself. The exporter builds to it, the runtime checks and
//! reads it, the sidecar and the Triton config describe it — all from here.
//!
//! One input, `image` f32 [B, 3, S, S] (normalised, NCHW) or `image_u8` uint8 [B, S, S, 3] (RGB
//! pixels, normalised in the graph); outputs `anomaly_score` f32 [B], `anomaly_map` f32
//! [B, 1, S, S], `topk_indices` int64 [B, K]; the spec and preprocessing in `metadata_props`.

use std::fmt;

use crate::spec::Spec;

/// `metadata_props` keys.
pub const META_FORMAT: &str = "dlvp.format";
pub const META_SPEC: &str = "dlvp.spec";
pub const META_IMAGE_SIZE: &str = "dlvp.image_size";
pub const META_MEAN: &str = "dlvp.preprocess.mean";
pub const META_STD: &str = "dlvp.preprocess.std";
pub const META_RESIZE: &str = "dlvp.preprocess.resize";
/// The input kind: `image` or `image_u8` ([`InputKind`]).
pub const META_INPUT: &str = "dlvp.input";
/// `fp16` on graphs with f16 weights and compute; absent means fp32 ([`Precision`]).
pub const META_PRECISION: &str = "dlvp.precision";
/// The export target on graphs made for one (`tensorrt-8.5`, ...); absent means generic.
pub const META_TARGET: &str = "dlvp.target";
/// How much of int8 an int8 graph's weights use: `reduced` (|q| ≤ 64, exact on every CPU) or
/// `full` (|q| ≤ 127). An int8 graph without the key predates it and is `full`.
pub const META_INT8_WEIGHT_RANGE: &str = "dlvp.int8.weight_range";
/// An int8 graph's calibration method (`minmax`, `percentile`, `entropy`).
pub const META_INT8_METHOD: &str = "dlvp.int8.method";
/// How many images an int8 graph was calibrated on.
pub const META_INT8_IMAGES: &str = "dlvp.int8.images";
/// SHA-256 over the calibration images (each one's path within the folder, length and bytes).
pub const META_INT8_CALIBRATION_SHA256: &str = "dlvp.int8.calibration_sha256";
/// Which Linear layers are int8: `blocks` or `blocks-but-selection`.
pub const META_INT8_LAYERS: &str = "dlvp.int8.layers";
/// The runtime the calibration ran on (`onnxruntime-cpu`, `tract`).
pub const META_INT8_CALIBRATED_ON: &str = "dlvp.int8.calibrated_on";
/// A decision threshold calibrated on a line's good images (`dlvp threshold`): an image whose
/// `anomaly_score` is above it is NG. Split-conformal: a new good image is above it with
/// probability at most [`META_THRESHOLD_FALSE_ALARM`].
pub const META_THRESHOLD_IMAGE: &str = "dlvp.threshold.image";
/// The pixel threshold: a good image has any `anomaly_map` value above it with probability at
/// most [`META_THRESHOLD_FALSE_ALARM`] (masks are the map above it).
pub const META_THRESHOLD_PIXEL: &str = "dlvp.threshold.pixel";
/// The false-alarm rate α both thresholds guarantee at most.
pub const META_THRESHOLD_FALSE_ALARM: &str = "dlvp.threshold.false_alarm";
/// How many good images the thresholds were calibrated on.
pub const META_THRESHOLD_IMAGES: &str = "dlvp.threshold.images";
/// SHA-256 over those images (each one's path within the folder, length and bytes, in order).
pub const META_THRESHOLD_IMAGES_SHA256: &str = "dlvp.threshold.images_sha256";
/// How far both thresholds stand above their order statistics and from every calibration score
/// at least (`dlvp threshold --margin`, default 1e-4): scores move by less than it between
/// batches and fp32 backends, so every calibration image gets one decision in every run.
/// Informational: the thresholds already include it.
pub const META_THRESHOLD_MARGIN: &str = "dlvp.threshold.margin";
/// How the images were scored: `resize` (the whole image at the graph's size) and the backend.
pub const META_THRESHOLD_SCORED_WITH: &str = "dlvp.threshold.scored_with";
/// How the images were cut for the thresholds: `none` (each whole image resized to the graph's
/// size) or `scale S, overlap F` (tiled inference, `dlvp detect --tile`). Absent: `none`. A run
/// that tiles otherwise than this does not get the stated false-alarm rate.
pub const META_THRESHOLD_TILING: &str = "dlvp.threshold.tiling";
/// The value of [`META_FORMAT`] this version writes and reads.
pub const GRAPH_FORMAT: &str = "dlvp-clip-onnx/1";

pub const OUTPUT_SCORE: &str = "anomaly_score";
pub const OUTPUT_MAP: &str = "anomaly_map";
pub const OUTPUT_TOPK: &str = "topk_indices";
/// The outputs, in the graph's order.
pub const OUTPUTS: [&str; 3] = [OUTPUT_SCORE, OUTPUT_MAP, OUTPUT_TOPK];

/// The element types the contract uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    F32,
    U8,
    I64,
}

impl ElemType {
    /// The name in numpy's and the sidecar's spelling.
    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "float32",
            ElemType::U8 => "uint8",
            ElemType::I64 => "int64",
        }
    }
}

/// One dimension: the batch (symbolic in the graph) or a fixed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Batch,
    Fixed(usize),
}

/// One input or output of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDesc {
    pub name: &'static str,
    pub elem: ElemType,
    pub dims: Vec<Dim>,
    /// `NCHW` or `NHWC` for images.
    pub layout: Option<&'static str>,
    pub meaning: String,
}

impl TensorDesc {
    /// The dims after the batch, as Triton's `dims` and per-request shapes state them.
    pub fn per_item_dims(&self) -> Vec<usize> {
        self.dims
            .iter()
            .filter_map(|d| match d {
                Dim::Fixed(n) => Some(*n),
                Dim::Batch => None,
            })
            .collect()
    }
}

/// Which input the graph takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum InputKind {
    /// `image` f32 [B, 3, S, S], normalised by the caller (§1).
    #[default]
    Image,
    /// `image_u8` uint8 [B, S, S, 3], RGB already resized; §1's normalisation is in the graph.
    ImageU8,
}

impl InputKind {
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Image => "image",
            InputKind::ImageU8 => "image_u8",
        }
    }

    /// The kind a [`META_INPUT`] value names.
    pub fn from_name(name: &str) -> Option<Self> {
        [InputKind::Image, InputKind::ImageU8]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// The input tensor for images of side `size`.
    pub fn desc(self, size: usize) -> TensorDesc {
        let s = Dim::Fixed(size);
        match self {
            InputKind::Image => TensorDesc {
                name: self.name(),
                elem: ElemType::F32,
                dims: vec![Dim::Batch, Dim::Fixed(3), s, s],
                layout: Some("NCHW"),
                meaning: "RGB resized to image_size × image_size, then (x / 255 − mean) / std per channel".into(),
            },
            InputKind::ImageU8 => TensorDesc {
                name: self.name(),
                elem: ElemType::U8,
                dims: vec![Dim::Batch, s, s, Dim::Fixed(3)],
                layout: Some("NHWC"),
                meaning: "RGB pixels already resized to image_size × image_size; the graph normalises them".into(),
            },
        }
    }
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The precision of a graph's weights and compute (its inputs and outputs stay f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Precision {
    #[default]
    Fp32,
    Fp16,
    /// Int8 QDQ: chosen Linear layers' weights and inputs quantized, everything else f32.
    Int8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }

    /// The precision a [`META_PRECISION`] value names.
    pub fn from_name(name: &str) -> Option<Self> {
        [Precision::Fp32, Precision::Fp16, Precision::Int8]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The three outputs for `spec`, in the graph's order.
pub fn outputs(spec: &Spec) -> [TensorDesc; 3] {
    let size = Dim::Fixed(spec.image_size);
    [
        TensorDesc {
            name: OUTPUT_SCORE,
            elem: ElemType::F32,
            dims: vec![Dim::Batch],
            layout: None,
            meaning: "image anomaly probability in [0, 1]".into(),
        },
        TensorDesc {
            name: OUTPUT_MAP,
            elem: ElemType::F32,
            dims: vec![Dim::Batch, Dim::Fixed(1), size, size],
            layout: None,
            meaning: "per-pixel anomaly probability in [0, 1] at the input's size; resize it to the original image".into(),
        },
        TensorDesc {
            name: OUTPUT_TOPK,
            elem: ElemType::I64,
            dims: vec![Dim::Batch, Dim::Fixed(spec.slfs.top_k)],
            layout: None,
            meaning: format!(
                "patch indices (row-major in the {g}×{g} grid) SLFS selected, highest first",
                g = spec.grid()
            ),
        },
    ]
}

/// The `metadata_props` every export writes, in order: format, spec, and the preprocessing a
/// caller needs without parsing the spec.
pub fn metadata(spec: &Spec, input: InputKind) -> Vec<(String, String)> {
    let list = |v: &[f64; 3]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        (META_FORMAT.into(), GRAPH_FORMAT.into()),
        (META_SPEC.into(), spec.to_yaml()),
        (META_IMAGE_SIZE.into(), spec.image_size.to_string()),
        (META_MEAN.into(), list(&spec.preprocess.mean)),
        (META_STD.into(), list(&spec.preprocess.std)),
        (META_RESIZE.into(), spec.preprocess.resize.name().into()),
        (META_INPUT.into(), input.name().into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in [InputKind::Image, InputKind::ImageU8] {
            assert_eq!(InputKind::from_name(kind.name()), Some(kind));
        }
        for p in [Precision::Fp32, Precision::Fp16, Precision::Int8] {
            assert_eq!(Precision::from_name(p.name()), Some(p));
        }
        assert_eq!(InputKind::from_name("pixels"), None);
        assert_eq!(Precision::from_name("int4"), None);
    }

    #[test]
    fn the_tiny_spec_describes_its_tensors() {
        let spec = Spec::from_yaml(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../model-spec/tiny.yaml"),
            )
            .unwrap(),
            "tiny.yaml",
        )
        .unwrap();
        let s = spec.image_size;
        assert_eq!(InputKind::ImageU8.desc(s).per_item_dims(), [s, s, 3]);
        let [score, map, topk] = outputs(&spec);
        assert_eq!(score.per_item_dims(), Vec::<usize>::new());
        assert_eq!(map.per_item_dims(), [1, s, s]);
        assert_eq!(topk.per_item_dims(), [spec.slfs.top_k]);
        assert_eq!(topk.elem.name(), "int64");
        let meta = metadata(&spec, InputKind::Image);
        assert_eq!(meta[0], (META_FORMAT.into(), GRAPH_FORMAT.into()));
        assert_eq!(meta.last().unwrap(), &(META_INPUT.into(), "image".into()));
    }
}
