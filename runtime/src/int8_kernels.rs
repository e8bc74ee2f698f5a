//! Whether a CPU's int8 kernels compute an int8 (QDQ) graph exactly (model-spec/README.md,
//! "Precision"): the CPU's instruction-set features, and a static audit of the graph's int8
//! weights against the one way x86 int8 kernels lose precision.
//!
//! ONNX Runtime (MLAS) and OpenVINO (oneDNN) multiply an int8 activation by an int8 weight as
//! u8 × s8: a signed activation is shifted by +128 into [0, 255] and the shift subtracted later.
//! Without VNNI they use `vpmaddubsw`, which adds each pair of adjacent products along the
//! reduction axis K into a 16-bit integer **with saturation**; so for a weight column w, any
//! pair (w[k], w[k+1]) whose same-signed magnitudes sum past 32 767 / 255 ≈ 128.5 can clip for
//! some activation the quantizer produces, and the graph's answer then depends on the CPU.
//! VNNI (`vpdpbusd`, AVX-512 or AVX) and AMX accumulate in 32 bits and are exact; so are Arm's
//! kernels and GPUs. Weights within ±64 (dlvp's default, `--int8-weights reduced`) are safe
//! everywhere: 255 · (64 + 64) = 32 640.
//!
//! [`audit`] checks every int8 weight that a `DequantizeLinear` feeds into the B input of a
//! `MatMul` or `Gemm` — the only int8 contraction in dlvp's graphs — pair by adjacent pair, both
//! pair alignments (the kernels' packing decides which pairs meet; both are checked).

use std::collections::HashMap;

use dlvp_onnx_proto as pb;

/// The largest |sum| of a pair of u8 × s8 products the 16-bit accumulator holds.
const I16_MAX: i64 = i16::MAX as i64;
/// The largest u8 activation after the +128 shift.
const U8_MAX: i64 = 255;

/// The instruction-set features that decide how this CPU runs int8 (and bf16) arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    pub x86_64: bool,
    pub avx2: bool,
    pub fma: bool,
    pub avx512f: bool,
    pub avx512bw: bool,
    pub avx512_vnni: bool,
    pub avx_vnni: bool,
    pub avx512_bf16: bool,
    pub amx_int8: bool,
}

impl CpuFeatures {
    /// The features of the CPU this runs on.
    pub fn detect() -> CpuFeatures {
        #[cfg(target_arch = "x86_64")]
        {
            CpuFeatures {
                x86_64: true,
                avx2: std::arch::is_x86_feature_detected!("avx2"),
                fma: std::arch::is_x86_feature_detected!("fma"),
                avx512f: std::arch::is_x86_feature_detected!("avx512f"),
                avx512bw: std::arch::is_x86_feature_detected!("avx512bw"),
                avx512_vnni: std::arch::is_x86_feature_detected!("avx512vnni"),
                avx_vnni: std::arch::is_x86_feature_detected!("avxvnni"),
                avx512_bf16: std::arch::is_x86_feature_detected!("avx512bf16"),
                amx_int8: amx_int8(),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            CpuFeatures::default()
        }
    }

    /// The features present, by the names Linux's /proc/cpuinfo uses (`avx512_vnni`, ...); on a
    /// CPU other than x86-64, its architecture.
    pub fn names(&self) -> Vec<&'static str> {
        if !self.x86_64 {
            return vec![std::env::consts::ARCH];
        }
        [
            (self.avx2, "avx2"),
            (self.fma, "fma"),
            (self.avx512f, "avx512f"),
            (self.avx512bw, "avx512bw"),
            (self.avx512_vnni, "avx512_vnni"),
            (self.avx_vnni, "avx_vnni"),
            (self.avx512_bf16, "avx512_bf16"),
            (self.amx_int8, "amx_int8"),
        ]
        .into_iter()
        .filter_map(|(has, name)| has.then_some(name))
        .collect()
    }

    /// Whether the CPU backends' int8 kernels accumulate every product in 32 bits here (VNNI or
    /// AMX on x86-64; always elsewhere), so that full-range int8 weights are exact.
    pub fn int8_dot_product_exact(&self) -> bool {
        !self.x86_64 || self.avx512_vnni || self.avx_vnni || self.amx_int8
    }
}

/// AMX-INT8 (CPUID leaf 7, EDX bit 25), which `is_x86_feature_detected!` does not name on stable.
#[cfg(target_arch = "x86_64")]
fn amx_int8() -> bool {
    // Leaf 7 only where the CPU reports it (the maximum leaf, from leaf 0).
    let max = std::arch::x86_64::__cpuid(0).eax;
    max >= 7 && std::arch::x86_64::__cpuid_count(7, 0).edx & (1 << 25) != 0
}

/// A pair of adjacent int8 weights that can overflow a 16-bit pair sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairOverflow {
    /// The int8 initializer.
    pub weight: String,
    /// The first row (K index) of the pair and the column (output channel).
    pub row: usize,
    pub column: usize,
    /// The pair's values.
    pub values: (i8, i8),
}

/// What [`audit`] found over a graph's int8 weights.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WeightAudit {
    /// Int8 weight initializers feeding a contraction (each counted once).
    pub weights: usize,
    /// The largest |q| among them.
    pub max_abs_q: u8,
    /// The largest |a·w₁ + a·w₂| a pair of them reaches for an activation a in [0, 255].
    pub worst_pair_sum: i64,
    /// Adjacent pairs (either alignment) whose sum can pass the 16-bit range.
    pub pairs_over: u64,
    /// The first such pair, in graph order.
    pub first_over: Option<PairOverflow>,
}

impl WeightAudit {
    /// Whether every x86 int8 kernel, with or without VNNI, computes the graph exactly.
    pub fn exact_without_vnni(&self) -> bool {
        self.pairs_over == 0
    }

    /// Where the graph is computed exactly, in words (the first overflowing pair named).
    pub fn verdict(&self) -> String {
        match &self.first_over {
            None => "exact on every CPU (x86 with or without VNNI, Arm, GPUs)".to_string(),
            Some(p) => format!(
                "WRONG on x86 CPUs without VNNI (ONNX Runtime, OpenVINO): {} pairs pass 16 bits, \
                 first {} rows {}-{} column {} ({}, {}); exact with VNNI/AMX, on Arm and GPUs",
                self.pairs_over,
                p.weight,
                p.row,
                p.row + 1,
                p.column,
                p.values.0,
                p.values.1
            ),
        }
    }
}

/// Why an int8 weight could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("int8 weight `{weight}` of {node}: {reason}")]
    Weight {
        weight: String,
        node: String,
        reason: String,
    },
}

/// Audits the int8 weights of `graph` (module header); `Ok(None)` when it has none.
pub fn audit(graph: &pb::GraphProto) -> Result<Option<WeightAudit>, AuditError> {
    let initializers: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    // The int8 initializer behind each DequantizeLinear output.
    let dequantized: HashMap<&str, (&str, &pb::TensorProto)> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "DequantizeLinear")
        .filter_map(|n| {
            let t = initializers.get(n.input.first()?.as_str())?;
            (t.data_type == pb::tensor_proto::DataType::Int8 as i32).then(|| {
                (
                    n.output.first().map(String::as_str).unwrap_or(""),
                    (n.name.as_str(), *t),
                )
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut found = WeightAudit::default();
    for node in &graph.node {
        if !matches!(node.op_type.as_str(), "MatMul" | "Gemm") {
            continue;
        }
        let Some(&(dq, tensor)) = node.input.get(1).and_then(|b| dequantized.get(b.as_str()))
        else {
            continue;
        };
        if !seen.insert(tensor.name.as_str()) {
            continue;
        }
        let fail = |reason: String| AuditError::Weight {
            weight: tensor.name.clone(),
            node: dq.to_string(),
            reason,
        };
        let transposed = node.op_type == "Gemm"
            && node
                .attribute
                .iter()
                .any(|a| a.name == "transB" && a.i != 0);
        let (rows, cols) = match tensor.dims.as_slice() {
            &[k, n] if k >= 0 && n >= 0 => (k as usize, n as usize),
            dims => {
                return Err(fail(format!(
                    "expected a 2-D [K, N] tensor, found dims {dims:?}"
                )))
            }
        };
        let values = int8_values(tensor).map_err(fail)?;
        if values.len() != rows * cols {
            return Err(fail(format!(
                "{} values for dims [{rows}, {cols}]",
                values.len()
            )));
        }
        found.weights += 1;
        // Element (k, n) of the [K, N] operand, whichever way the tensor is stored.
        let (k_len, n_len) = if transposed {
            (cols, rows)
        } else {
            (rows, cols)
        };
        let at = |k: usize, n: usize| {
            if transposed {
                values[n * cols + k]
            } else {
                values[k * cols + n]
            }
        };
        for n in 0..n_len {
            for k in 0..k_len {
                let w = at(k, n);
                found.max_abs_q = found.max_abs_q.max(w.unsigned_abs());
                if k + 1 == k_len {
                    continue;
                }
                let v = at(k + 1, n);
                let positive = (w.max(0) as i64 + v.max(0) as i64) * U8_MAX;
                let negative = (-(w.min(0) as i64) - v.min(0) as i64) * U8_MAX;
                found.worst_pair_sum = found.worst_pair_sum.max(positive).max(negative);
                if positive > I16_MAX || negative > I16_MAX + 1 {
                    found.pairs_over += 1;
                    if found.first_over.is_none() {
                        found.first_over = Some(PairOverflow {
                            weight: tensor.name.clone(),
                            row: k,
                            column: n,
                            values: (w, v),
                        });
                    }
                }
            }
        }
    }
    Ok((found.weights > 0).then_some(found))
}

/// An int8 tensor's values, from `raw_data` or (as some writers store them) `int32_data`.
fn int8_values(t: &pb::TensorProto) -> Result<Vec<i8>, String> {
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err("its data is external (load the model from its file first)".into());
    }
    if !t.raw_data.is_empty() {
        return Ok(t.raw_data.iter().map(|&b| b as i8).collect());
    }
    t.int32_data
        .iter()
        .map(|&v| i8::try_from(v).map_err(|_| format!("value {v} is not int8")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int8_tensor(name: &str, dims: [i64; 2], values: &[i8]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: pb::tensor_proto::DataType::Int8 as i32,
            raw_data: values.iter().map(|&v| v as u8).collect(),
            ..Default::default()
        }
    }

    fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
        pb::NodeProto {
            name: format!("{op}:{output}"),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    /// x · DQ(w) with w [K = 3, N = 2] row-major.
    fn graph(w: &[i8]) -> pb::GraphProto {
        pb::GraphProto {
            initializer: vec![int8_tensor("w", [3, 2], w)],
            node: vec![
                node("DequantizeLinear", &["w", "s", "z"], "wd"),
                node("MatMul", &["x", "wd"], "y"),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn weights_within_64_never_overflow_a_pair() {
        let a = audit(&graph(&[64, -64, 64, -64, -64, 64]))
            .unwrap()
            .unwrap();
        assert_eq!(a.weights, 1);
        assert_eq!(a.max_abs_q, 64);
        assert_eq!(a.worst_pair_sum, 255 * 128);
        assert!(a.exact_without_vnni(), "{a:?}");
    }

    #[test]
    fn a_same_signed_pair_past_128_overflows_and_is_named() {
        // Column 1, rows 1-2: 100 + 29 = 129 > 32767 / 255.
        let a = audit(&graph(&[127, 0, -127, 100, 127, 29]))
            .unwrap()
            .unwrap();
        assert_eq!(a.pairs_over, 1, "{a:?}");
        assert_eq!(
            a.first_over,
            Some(PairOverflow {
                weight: "w".into(),
                row: 1,
                column: 1,
                values: (100, 29)
            })
        );
        assert!(!a.exact_without_vnni());
        // Opposite signs cannot add up: 127 next to -127 is safe.
        assert_eq!(a.max_abs_q, 127);
    }

    #[test]
    fn the_negative_side_holds_one_more() {
        // −32 768 fits in 16 bits, +32 768 does not; 255 · 128 = 32 640 fits either way, and
        // 255 · 129 = 32 895 fits neither.
        let a = audit(&graph(&[-65, 0, -64, 0, 0, 0])).unwrap().unwrap();
        assert_eq!(a.pairs_over, 1);
        assert_eq!(a.worst_pair_sum, 255 * 129);
    }

    #[test]
    fn gemm_with_trans_b_reads_k_along_rows_of_the_transposed_tensor() {
        // Stored [N = 2, K = 3]: row 0 holds column 0's K values (100, 100, 0).
        let mut g = graph(&[100, 100, 0, 1, 1, 1]);
        g.initializer[0].dims = vec![2, 3];
        g.node[1] = node("Gemm", &["x", "wd"], "y");
        g.node[1].attribute.push(pb::AttributeProto {
            name: "transB".into(),
            i: 1,
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            ..Default::default()
        });
        let a = audit(&g).unwrap().unwrap();
        assert_eq!(a.pairs_over, 1, "{a:?}");
        assert_eq!(a.first_over.unwrap().column, 0);
    }

    #[test]
    fn graphs_without_int8_weights_have_nothing_to_audit_and_bad_ones_are_named() {
        let mut g = graph(&[0; 6]);
        g.initializer[0].data_type = pb::tensor_proto::DataType::Float as i32;
        assert_eq!(audit(&g).unwrap(), None);
        let mut g = graph(&[0; 6]);
        g.initializer[0].raw_data.pop();
        let e = audit(&g).unwrap_err().to_string();
        assert!(
            e.contains("`w`") && e.contains("5 values for dims [3, 2]"),
            "{e}"
        );
    }

    #[test]
    fn full_range_weights_are_exact_only_with_a_32_bit_dot_product() {
        let avx2 = CpuFeatures {
            x86_64: true,
            avx2: true,
            fma: true,
            ..Default::default()
        };
        assert!(!avx2.int8_dot_product_exact());
        assert_eq!(avx2.names(), ["avx2", "fma"]);
        let vnni = CpuFeatures {
            avx_vnni: true,
            ..avx2
        };
        assert!(vnni.int8_dot_product_exact());
        assert!(CpuFeatures::default().int8_dot_product_exact(), "not x86");
        // Whatever this machine is, detection gives a consistent answer.
        let here = CpuFeatures::detect();
        assert_eq!(
            here.int8_dot_product_exact(),
            !here.x86_64
                || here
                    .names()
                    .iter()
                    .any(|n| n.contains("vnni") || *n == "amx_int8")
        );
    }
}
