//! The int8 variant of a built graph: static QDQ quantization in standard ONNX (opset 17
//! `QuantizeLinear`/`DequantizeLinear`), the explicit-quantization form TensorRT and ONNX
//! Runtime both read (model-spec/README.md, "Precision").
//!
//! Only the MatMuls of chosen Linear layers ([`Graph::linears`], picked by [`Selection`]) are
//! quantized:
//! - the weight [in, out] becomes an int8 initializer, symmetric per output channel (axis 1,
//!   zero point 0, scale = max |w| / qmax of the column, values rounded half to even as
//!   `QuantizeLinear` rounds), read through a `DequantizeLinear`. qmax is 64 by default
//!   ([`WeightRange::Reduced`]): x86 CPUs without VNNI multiply int8 in pairs summed in 16 bits
//!   with saturation (`vpmaddubsw`, in ONNX Runtime's and OpenVINO's AVX2 kernels), and only
//!   |q| ≤ 64 keeps every pair in range for every activation (255 · 64 · 2 = 32 640 ≤ 32 767);
//!   [`WeightRange::Full`] (qmax 127) is exact only where an int8 dot product accumulates in 32
//!   bits (VNNI, AMX, Arm, GPUs);
//! - the activation [.., in] passes through `QuantizeLinear` → `DequantizeLinear` with one
//!   per-tensor scale from calibration, symmetric int8 with zero point 0 (TensorRT's explicit
//!   quantization requires zero points of 0).
//!
//! Everything else stays f32: LayerNorm, Softmax, GELU, the attention products, the Top-K
//! selection, HFD, MLOP, the head and the blur. Each use gets its own DequantizeLinear nodes
//! (a weight shared by the two passes keeps one int8 initializer): ONNX Runtime fuses a
//! Q/DQ → MatMul group only when its DequantizeLinear feeds that MatMul alone.

use std::collections::{BTreeMap, HashMap};

use dlvp_contract::graph::{Precision, META_INT8_WEIGHT_RANGE, META_PRECISION};

use super::{Attr, DType, Graph, Initializer, LinearUse, Node};

/// The largest int8 magnitude of an activation; symmetric quantization leaves −128 out.
const QMAX: f32 = 127.0;

/// The metadata key that records the weights' [`WeightRange`] (`reduced` or `full`).
pub const META_WEIGHT_RANGE: &str = META_INT8_WEIGHT_RANGE;

/// How much of int8 the quantized weights use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightRange {
    /// |q| ≤ 64 (7 bits and the sign): exact on every int8 kernel, including the AVX2 ones
    /// that sum pairs of u8 × s8 products in 16 bits with saturation.
    #[default]
    Reduced,
    /// |q| ≤ 127: half the rounding error, but pairs of products can leave 16 bits, so ONNX
    /// Runtime and OpenVINO compute wrong sums on x86 CPUs without VNNI.
    Full,
}

impl WeightRange {
    pub const ALL: [WeightRange; 2] = [WeightRange::Reduced, WeightRange::Full];

    pub fn name(self) -> &'static str {
        match self {
            WeightRange::Reduced => "reduced",
            WeightRange::Full => "full",
        }
    }

    /// The largest |q| a weight may take.
    pub fn qmax(self) -> f32 {
        match self {
            WeightRange::Reduced => 64.0,
            WeightRange::Full => QMAX,
        }
    }
}

dlvp_contract::named_enum!(WeightRange, "int8 weight range");

/// Which Linear layers are quantized, by the scope that built them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Selection {
    /// Every Linear in a transformer block of the image tower (both passes) and the text tower
    /// (attention in/out projections and both MLP layers).
    #[default]
    Blocks,
    /// As `Blocks`, but the image tower's first pass (whose CLS attention picks the Top-K
    /// patches) stays f32.
    BlocksButSelection,
}

impl Selection {
    pub const ALL: [Selection; 2] = [Selection::Blocks, Selection::BlocksButSelection];

    /// `blocks`, `blocks-but-selection`: the option's value and `dlvp.int8.layers`.
    pub fn name(self) -> &'static str {
        match self {
            Selection::Blocks => "blocks",
            Selection::BlocksButSelection => "blocks-but-selection",
        }
    }

    pub fn covers(self, scope: &str) -> bool {
        let in_block = scope.contains("/blocks.");
        match self {
            Selection::Blocks => in_block,
            Selection::BlocksButSelection => in_block && !scope.starts_with("visual/pass1"),
        }
    }
}

dlvp_contract::named_enum!(Selection, "int8 layer set");

/// The Linear MatMuls `selection` quantizes, in graph order.
pub fn chosen(graph: &Graph, selection: Selection) -> Vec<&LinearUse> {
    graph
        .linears
        .iter()
        .filter(|l| selection.covers(&l.scope))
        .collect()
}

/// The activation scale of a tensor whose calibrated range is [−`amax`, `amax`].
pub fn scale_for(amax: f32) -> f32 {
    scale_within(amax, QMAX)
}

/// The scale that maps [−`amax`, `amax`] onto [−`qmax`, `qmax`].
fn scale_within(amax: f32, qmax: f32) -> f32 {
    if amax.is_finite() && amax > 0.0 {
        amax / qmax
    } else {
        // An all-zero activation: any positive scale represents it exactly.
        1.0
    }
}

/// Per-column symmetric int8 of a row-major [rows, cols] f32 matrix, each column within
/// ±`range.qmax()`: (values, scales).
pub fn quantize_columns(
    values: &[f32],
    rows: usize,
    cols: usize,
    range: WeightRange,
) -> (Vec<i8>, Vec<f32>) {
    let qmax = range.qmax();
    let mut amax = vec![0f32; cols];
    for row in values.chunks_exact(cols).take(rows) {
        for (m, v) in amax.iter_mut().zip(row) {
            *m = m.max(v.abs());
        }
    }
    let scales: Vec<f32> = amax.iter().map(|&m| scale_within(m, qmax)).collect();
    let q = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = v / scales[i % cols];
            x.round_ties_even().clamp(-qmax, qmax) as i8
        })
        .collect();
    (q, scales)
}

/// Why the graph could not be quantized.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Int8Error {
    #[error("an int8 export needs activation scales from calibration")]
    NoCalibration,
    #[error("no calibrated scale for activation `{tensor}` (input of {matmul})")]
    MissingScale { tensor: String, matmul: String },
    #[error("weight `{weight}` of {matmul} is not a 2-D f32 initializer")]
    Weight { weight: String, matmul: String },
}

/// Rewrites `graph` in place as the module header says, with `scales` (activation tensor name →
/// per-tensor scale) from calibration and weights within `range`.
pub fn convert(
    graph: &mut Graph,
    selection: Selection,
    scales: &BTreeMap<String, f32>,
    range: WeightRange,
) -> Result<(), Int8Error> {
    let chosen: HashMap<String, LinearUse> = chosen(graph, selection)
        .into_iter()
        .map(|l| (l.matmul.clone(), l.clone()))
        .collect();
    let index: HashMap<String, usize> = graph
        .initializers
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let zero_point = graph_scalar(graph, "int8/zero_point", DType::I8, vec![0]);
    let mut weights: HashMap<String, (String, String, String)> = HashMap::new();
    let mut act_scales: HashMap<String, String> = HashMap::new();
    let mut new_inits: Vec<Initializer> = Vec::new();
    let old = std::mem::take(&mut graph.nodes);
    let mut nodes = Vec::with_capacity(old.len() + 3 * chosen.len());
    for mut node in old {
        let Some(linear) = chosen.get(&node.name) else {
            nodes.push(node);
            continue;
        };
        let act = &linear.activation.name;
        let scale = *scales.get(act).ok_or_else(|| Int8Error::MissingScale {
            tensor: act.clone(),
            matmul: node.name.clone(),
        })?;
        let act_scale = act_scales
            .entry(act.clone())
            .or_insert_with(|| {
                let name = format!("{act}/int8_scale");
                new_inits.push(f32_scalar(&name, scale));
                name
            })
            .clone();
        let (wq, ws, wzp) = match weights.get(&linear.weight) {
            Some(w) => w.clone(),
            None => {
                let bad = || Int8Error::Weight {
                    weight: linear.weight.clone(),
                    matmul: node.name.clone(),
                };
                let t = &graph.initializers[*index.get(&linear.weight).ok_or_else(bad)?];
                if t.dtype != DType::F32 || t.dims.len() != 2 {
                    return Err(bad());
                }
                let values: Vec<f32> = t
                    .raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                let (q, s) = quantize_columns(&values, t.dims[0], t.dims[1], range);
                let (qn, sn) = (
                    format!("{}/int8", linear.weight),
                    format!("{}/int8_scale", linear.weight),
                );
                new_inits.push(Initializer {
                    name: qn.clone(),
                    dtype: DType::I8,
                    dims: t.dims.clone(),
                    raw: q.iter().map(|&v| v as u8).collect(),
                });
                new_inits.push(Initializer {
                    name: sn.clone(),
                    dtype: DType::F32,
                    dims: vec![t.dims[1]],
                    raw: s.iter().flat_map(|v| v.to_le_bytes()).collect(),
                });
                let zp = weight_zero_points(&mut new_inits, t.dims[1]);
                weights.insert(linear.weight.clone(), (qn.clone(), sn.clone(), zp.clone()));
                (qn, sn, zp)
            }
        };
        let base = &node.name;
        let (q, dq, wdq) = (
            format!("{base}/x_quant"),
            format!("{base}/x_dequant"),
            format!("{base}/w_dequant"),
        );
        nodes.push(Node {
            name: q.clone(),
            op: "QuantizeLinear",
            inputs: vec![act.clone(), act_scale.clone(), zero_point.clone()],
            outputs: vec![q.clone()],
            output_dtypes: vec![DType::I8],
            attrs: vec![],
        });
        nodes.push(Node {
            name: dq.clone(),
            op: "DequantizeLinear",
            inputs: vec![q, act_scale, zero_point.clone()],
            outputs: vec![dq.clone()],
            output_dtypes: vec![DType::F32],
            attrs: vec![],
        });
        nodes.push(Node {
            name: wdq.clone(),
            op: "DequantizeLinear",
            inputs: vec![wq, ws, wzp],
            outputs: vec![wdq.clone()],
            output_dtypes: vec![DType::F32],
            attrs: vec![("axis", Attr::Int(1))],
        });
        node.inputs = vec![dq, wdq];
        nodes.push(node);
    }
    graph.nodes = nodes;
    graph.initializers.extend(new_inits);
    graph.drop_unused_initializers();
    graph
        .metadata
        .push((META_PRECISION.into(), Precision::Int8.name().into()));
    graph
        .metadata
        .push((META_WEIGHT_RANGE.into(), range.name().into()));
    Ok(())
}

fn f32_scalar(name: &str, v: f32) -> Initializer {
    Initializer {
        name: name.to_string(),
        dtype: DType::F32,
        dims: vec![],
        raw: v.to_le_bytes().to_vec(),
    }
}

/// A named scalar initializer added to `graph` once.
fn graph_scalar(graph: &mut Graph, name: &str, dtype: DType, raw: Vec<u8>) -> String {
    if !graph.initializers.iter().any(|t| t.name == name) {
        graph.initializers.push(Initializer {
            name: name.to_string(),
            dtype,
            dims: vec![],
            raw,
        });
    }
    name.to_string()
}

/// The int8 zero points (all 0) of a per-channel weight with `channels` columns: one vector per
/// channel count, shared. Zero points of type int8 make the dequantized input's type explicit.
fn weight_zero_points(new_inits: &mut Vec<Initializer>, channels: usize) -> String {
    let name = format!("int8/zero_points_{channels}");
    if !new_inits.iter().any(|t| t.name == name) {
        new_inits.push(Initializer {
            name: name.clone(),
            dtype: DType::I8,
            dims: vec![channels],
            raw: vec![0; channels],
        });
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_quantize_symmetrically_to_127_in_full_range() {
        // 2 × 3: columns with amax 2, 0.5, 0 (the zero column gets scale 1).
        let w = [2.0, -0.25, 0.0, -1.0, 0.5, 0.0];
        let (q, s) = quantize_columns(&w, 2, 3, WeightRange::Full);
        assert_eq!(s, vec![2.0 / 127.0, 0.5 / 127.0, 1.0]);
        assert_eq!(q, vec![127, -64, 0, -64, 127, 0]);
        // Dequantized, every value is within half a step of the original.
        for (i, (&v, &x)) in q.iter().zip(&w).enumerate() {
            assert!((v as f32 * s[i % 3] - x).abs() <= s[i % 3] / 2.0 + 1e-7);
        }
    }

    #[test]
    fn columns_quantize_to_64_in_the_default_reduced_range() {
        let w = [2.0, -0.25, 0.0, -1.0, 0.5, 0.0];
        let (q, s) = quantize_columns(&w, 2, 3, WeightRange::default());
        assert_eq!(s, vec![2.0 / 64.0, 0.5 / 64.0, 1.0]);
        assert_eq!(q, vec![64, -32, 0, -32, 64, 0]);
        for (i, (&v, &x)) in q.iter().zip(&w).enumerate() {
            assert!((v as f32 * s[i % 3] - x).abs() <= s[i % 3] / 2.0 + 1e-7);
        }
    }

    #[test]
    fn ties_round_to_even_as_quantize_linear_does() {
        // 1.5 and 2.5 steps: QuantizeLinear rounds half to even (2, 2).
        let (q, _) = quantize_columns(&[127.0, 1.5, 2.5], 3, 1, WeightRange::Full);
        assert_eq!(q, vec![127, 2, 2]);
        let (q, _) = quantize_columns(&[64.0, 1.5, 2.5], 3, 1, WeightRange::Reduced);
        assert_eq!(q, vec![64, 2, 2]);
    }

    #[test]
    fn weight_ranges_parse_by_name() {
        for r in WeightRange::ALL {
            assert_eq!(r.name().parse::<WeightRange>(), Ok(r));
        }
        assert_eq!(
            "7bit".parse::<WeightRange>().unwrap_err(),
            "unknown int8 weight range `7bit`; one of reduced, full"
        );
    }

    #[test]
    fn selection_follows_scopes() {
        assert!(Selection::Blocks.covers("visual/pass1/blocks.3/attn"));
        assert!(Selection::Blocks.covers("text/blocks.0/mlp"));
        assert!(!Selection::Blocks.covers("visual/embed"));
        assert!(!Selection::BlocksButSelection.covers("visual/pass1/blocks.3/attn"));
        assert!(Selection::BlocksButSelection.covers("visual/pass2/blocks.3/mlp"));
        assert_eq!(scale_for(0.0), 1.0);
        assert_eq!(scale_for(254.0), 2.0);
    }
}
