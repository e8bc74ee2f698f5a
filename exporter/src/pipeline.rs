//! The whole export, as `dlvp export` runs it: checkpoint + spec → graph ([`crate::model`]) →
//! the precision pass (fp16; or int8 with the scales calibration measured on
//! [`calibration_graph`]) → the target's rewrites (LayerNormalization decomposed for TensorRT
//! 8.5) and its metadata → the ledger's unused tensors → ONNX bytes, checked against the target's
//! parser rules before anyone writes them (model-spec/README.md, "Graph contract").

use std::collections::BTreeMap;
use std::sync::Arc;

use dlvp_contract::graph::{InputKind, Precision, META_TARGET};
use dlvp_contract::Spec;
use prost::Message;

use crate::graph::int8::{Int8Error, Selection, WeightRange};
use crate::graph::Graph;
use crate::manifest::{expected_tensors, Usage};
use crate::model::{self, BuildError, GraphOptions};
use crate::onnx;
use crate::targets::{self, Target, Violation};
use crate::weights::{Checkpoint, LedgerReport};

/// What to export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// `image` (the caller normalises) or `image_u8` (normalised in the graph).
    pub input: InputKind,
    /// fp16 stores weights and computes in f16, keeping LayerNorm, Softmax, reductions, TopK and
    /// Resize in f32; inputs and outputs stay f32.
    pub precision: Precision,
    /// The parser the graph is for.
    pub target: Target,
    /// Accept checkpoint tensors the graph does not read (they are listed in [`Export::unused`]).
    pub allow_unused: bool,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The checkpoint holds tensors the graph does not read (a wrong spec, most often).
    #[error("{} tensor(s) the graph does not use: {}", names.len(), names.join(", "))]
    Unused { names: Vec<String> },
    /// The built graph breaks the target's parser rules: a bug in a target's rewrite.
    #[error("the graph would be rejected by {target}: {}", violations.iter().map(|v| format!("{} ({}): {}", v.node, v.op, v.reason)).collect::<Vec<_>>().join("; "))]
    Target {
        target: &'static str,
        violations: Vec<Violation>,
    },
    /// The int8 pass could not quantize the graph.
    #[error("int8: {0}")]
    Int8(#[from] Int8Error),
    /// The external data could not be written.
    #[error("writing the external data: {source}")]
    Write {
        #[source]
        source: std::io::Error,
    },
}

/// An exported graph, ready to serialise.
pub struct Export {
    pub graph: Graph,
    /// The account of the checkpoint's tensors.
    pub ledger: LedgerReport,
    /// Checkpoint tensors the graph does not read (empty unless `allow_unused`).
    pub unused: Vec<String>,
    pub options: ExportOptions,
    /// The graph's name in the ONNX model (the spec's name).
    pub name: String,
}

/// What an int8 export needs beyond [`ExportOptions`]: the layers to quantize, the activation
/// scales calibration measured, and what to record about the calibration in the metadata.
#[derive(Debug, Clone, Default)]
pub struct Quantization {
    pub selection: Selection,
    /// How much of int8 the weights use (`dlvp.int8.weight_range`).
    pub weight_range: WeightRange,
    /// Activation tensor name → per-tensor scale (symmetric int8, zero point 0).
    pub scales: BTreeMap<String, f32>,
    /// `metadata_props` entries (`dlvp.int8.method`, ...), written after the precision.
    pub metadata: Vec<(String, String)>,
}

/// Exports `spec` with the weights of `ckpt` (fp32 or fp16; int8 is [`export_int8`]).
pub fn export(
    ckpt: Arc<Checkpoint>,
    spec: &Spec,
    options: ExportOptions,
) -> Result<Export, ExportError> {
    export_with(ckpt, spec, options, None)
}

/// The int8 export: the fp32 graph with `quantization`'s layers in QDQ form
/// ([`crate::graph::int8`]); `options.precision` must be [`Precision::Int8`].
pub fn export_int8(
    ckpt: Arc<Checkpoint>,
    spec: &Spec,
    options: ExportOptions,
    quantization: &Quantization,
) -> Result<Export, ExportError> {
    export_with(ckpt, spec, options, Some(quantization))
}

/// The fp32 graph that calibration runs: the export of `options` (precision ignored) with the
/// input of every Linear that `selection` quantizes added as an extra output after the three of
/// the contract, named as the tensor itself. Returns the export and those names, in order.
pub fn calibration_graph(
    ckpt: Arc<Checkpoint>,
    spec: &Spec,
    options: ExportOptions,
    selection: Selection,
) -> Result<(Export, Vec<String>), ExportError> {
    let options = ExportOptions {
        precision: Precision::Fp32,
        ..options
    };
    let mut export = export_with(ckpt, spec, options, None)?;
    let taps: Vec<crate::graph::Wire> = {
        let mut seen = std::collections::HashSet::new();
        crate::graph::int8::chosen(&export.graph, selection)
            .into_iter()
            .filter(|l| seen.insert(l.activation.name.clone()))
            .map(|l| l.activation.clone())
            .collect()
    };
    for wire in &taps {
        export.graph.output(&wire.name, wire);
    }
    Ok((export, taps.into_iter().map(|w| w.name).collect()))
}

fn export_with(
    ckpt: Arc<Checkpoint>,
    spec: &Spec,
    options: ExportOptions,
    quantization: Option<&Quantization>,
) -> Result<Export, ExportError> {
    let built = model::build_with(
        ckpt,
        spec,
        GraphOptions {
            input: options.input,
        },
    )?;
    let mut graph = built.graph;
    match (options.precision, quantization) {
        (Precision::Fp16, _) => crate::graph::fp16::convert(&mut graph),
        (Precision::Int8, Some(q)) => {
            crate::graph::int8::convert(&mut graph, q.selection, &q.scales, q.weight_range)?;
            graph.metadata.extend(q.metadata.iter().cloned());
        }
        (Precision::Int8, None) => return Err(ExportError::Int8(Int8Error::NoCalibration)),
        (Precision::Fp32, _) => {}
    }
    if options.target == Target::Tensorrt85 {
        crate::graph::decompose::layer_norm(&mut graph);
    }
    if options.target != Target::Generic {
        // Generic graphs carry no such key, so their bytes stay what they were.
        graph
            .metadata
            .push((META_TARGET.into(), options.target.name().into()));
    }
    // Tensors a valid checkpoint holds but no graph reads (`logit_scale`) are not "unused".
    let ignored: Vec<String> = expected_tensors(spec)
        .into_iter()
        .filter(|t| t.usage == Usage::Ignored)
        .map(|t| t.name)
        .collect();
    let unused: Vec<String> = built
        .ledger
        .unused
        .iter()
        .filter(|n| !ignored.contains(n))
        .cloned()
        .collect();
    if !unused.is_empty() && !options.allow_unused {
        return Err(ExportError::Unused { names: unused });
    }
    Ok(Export {
        graph,
        ledger: built.ledger,
        unused,
        options,
        name: spec.name.clone(),
    })
}

impl Export {
    /// Whether the weights must go to an external data file (protobuf holds < 2 GiB).
    pub fn needs_external_data(&self) -> bool {
        self.graph.initializer_bytes() > onnx::EXTERNAL_DATA_THRESHOLD
    }

    /// The model as one ONNX message, checked against the target, consuming the export: the
    /// weights move into the message rather than being copied. Write it with
    /// [`OnnxModel::write_to`] and they are never held twice.
    pub fn into_model(self) -> Result<OnnxModel, ExportError> {
        let proto = onnx::into_model_proto(self.graph, &self.name);
        check(self.options.target, &proto)?;
        Ok(OnnxModel { proto })
    }

    /// [`Export::to_bytes`], consuming the export (the weights are held twice at the peak:
    /// message and bytes; [`Export::into_model`] and a writer avoid that).
    pub fn into_bytes(self) -> Result<Vec<u8>, ExportError> {
        Ok(self.into_model()?.to_bytes())
    }

    /// The model as one ONNX file, checked against the target.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ExportError> {
        let model = onnx::to_model_proto(&self.graph, &self.name);
        check(self.options.target, &model)?;
        Ok(model.encode_to_vec())
    }

    /// The model with its large constants in `data_file` (a name relative to the model's
    /// folder): (model bytes, data bytes), the model checked against the target.
    pub fn to_bytes_external(&self, data_file: &str) -> Result<(Vec<u8>, Vec<u8>), ExportError> {
        let mut data = Vec::new();
        let model = self.write_external(data_file, &mut data)?;
        Ok((model.to_bytes(), data))
    }

    /// The model with its large constants written to `data` (the file the model will know as
    /// `data_file`, relative to its folder) straight from the graph; the model itself, small,
    /// checked against the target before anything is written.
    pub fn write_external(
        &self,
        data_file: &str,
        data: impl std::io::Write,
    ) -> Result<OnnxModel, ExportError> {
        // The rules read structure and small constants only, so the model without its large
        // constants is checked before any data is written.
        let structure = onnx::model_proto_structure(&self.graph, &self.name);
        check(self.options.target, &structure)?;
        let proto = onnx::to_model_proto_external(&self.graph, &self.name, data_file, data)
            .map_err(|source| ExportError::Write { source })?;
        Ok(OnnxModel { proto })
    }
}

/// The model against the target's rules — on the message itself, before it is encoded, so
/// no second copy of the weights is ever decoded.
fn check(target: Target, model: &dlvp_onnx_proto::ModelProto) -> Result<(), ExportError> {
    let rules = target.rules();
    let violations = targets::check(model, rules);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ExportError::Target {
            target: rules.name,
            violations,
        })
    }
}

/// A checked, self-contained ONNX model, not yet encoded.
pub struct OnnxModel {
    proto: dlvp_onnx_proto::ModelProto,
}

impl OnnxModel {
    /// Encodes the model into `out` as it goes, through a 1 MiB buffer: the weights are not
    /// copied into a second buffer. The bytes are those of [`OnnxModel::to_bytes`]. Returns how
    /// many were written.
    pub fn write_to(&self, out: impl std::io::Write) -> std::io::Result<u64> {
        dlvp_onnx_proto::encode_to_writer(&self.proto, out)
    }

    /// The encoded model.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// The size of the encoding in bytes.
    pub fn encoded_len(&self) -> usize {
        self.proto.encoded_len()
    }
}
