//! What each export target's ONNX parser accepts: one table per target. Every rule cites where
//! it comes from. "operators.md@X" is `docs/operators.md` of the onnx-tensorrt repository
//! (TensorRT's ONNX parser) at branch or commit X: `8.5-GA`, `8.6-GA`, and `96e7811` (the
//! 10.0/10.1 GA table; TensorRT 10.3 of JetPack 6.1/6.2 parses the same opset range).

/// One target's parser limits.
pub struct Rules {
    pub name: &'static str,
    /// Inclusive opset range of the default ONNX domain.
    pub opsets: (i64, i64),
    /// Operators the parser imports, as a base release's list and each later release's
    /// additions (`None`: any standard operator, the generic target).
    pub ops: Option<&'static [&'static [&'static str]]>,
    /// (op, input index, what it is): inputs that must be initializers (or `Constant` outputs).
    pub constant_inputs: &'static [(&'static str, usize, &'static str)],
    /// TopK's largest K (exclusive), if limited.
    pub topk_k_below: Option<i64>,
    /// Resize modes the parser imports, if limited.
    pub resize_modes: Option<&'static [&'static str]>,
    /// Element types allowed for graph inputs and outputs (ONNX DataType names), if limited.
    pub io_types: Option<&'static [&'static str]>,
    /// QuantizeLinear/DequantizeLinear: the quantized types the parser takes (ONNX DataType
    /// names, read from the zero point, whose type is the quantized one) and whether zero
    /// points must be zero; `None`: any.
    pub qdq: Option<QdqRules>,
}

/// A parser's limits on QuantizeLinear/DequantizeLinear.
pub struct QdqRules {
    pub types: &'static [&'static str],
    pub zero_points_zero: bool,
}

/// ONNX Runtime and tract: the graph as exported (opset 17, standard operators only).
pub const GENERIC: Rules = Rules {
    name: "generic",
    opsets: (1, 17),
    ops: None,
    constant_inputs: &[],
    topk_k_below: None,
    resize_modes: None,
    io_types: None,
    qdq: None,
};

// operators.md@8.5-GA: "supports operators up to Opset 17"; LayerNormalization "N"; TopK "`K`
// input must be an initializer"; Slice "`axes` must be an initializer"; Unsqueeze "`axes` must
// be a constant tensor"; Resize modes "nearest, linear"; data types DOUBLE, FLOAT32, FLOAT16,
// INT8, BOOL (INT32/INT64 cast down) — no UINT8, so no `image_u8` input; DequantizeLinear "INT8",
// "`x_zero_point` must be zero"; QuantizeLinear "`y_zero_point` must be 0" (so symmetric int8:
// a QuantizeLinear without a zero point would give UINT8).
pub const TENSORRT_8_5: Rules = Rules {
    name: "tensorrt-8.5",
    opsets: (1, 17),
    ops: Some(&[OPS_8_5]),
    constant_inputs: &[
        ("TopK", 1, "K"),
        ("Slice", 3, "axes"),
        ("Unsqueeze", 1, "axes"),
    ],
    topk_k_below: Some(3840),
    resize_modes: Some(&["nearest", "linear"]),
    io_types: Some(&["FLOAT", "FLOAT16", "INT32", "INT64", "INT8", "BOOL"]),
    qdq: Some(QdqRules {
        types: &["INT8"],
        zero_points_zero: true,
    }),
};

// operators.md@8.6-GA: up to Opset 17; LayerNormalization "Y"; TopK without the initializer
// note (kept below: the K < 3840 limit is TensorRT's own, see docs/jetson.md); Cast lists UINT8, so
// an `image_u8` input cast to float imports; Quantize/DequantizeLinear as in 8.5 (INT8, zero
// points zero).
pub const TENSORRT_8_6: Rules = Rules {
    name: "tensorrt-8.6",
    opsets: (1, 17),
    ops: Some(&[OPS_8_5, ADDED_8_6]),
    constant_inputs: &[("Slice", 3, "axes"), ("Unsqueeze", 1, "axes")],
    topk_k_below: Some(3840),
    resize_modes: Some(&["nearest", "linear"]),
    io_types: Some(&[
        "FLOAT", "FLOAT16", "INT32", "INT64", "INT8", "UINT8", "BOOL",
    ]),
    qdq: Some(QdqRules {
        types: &["INT8"],
        zero_points_zero: true,
    }),
};

// operators.md@96e7811 (10.0/10.1 GA): "opset 9 to opset 20"; TopK "`K` input must be less than
// 3840"; Slice/Pad/Reduce* "`axes` must be an initializer" (inputs from opset 18 on); Unsqueeze
// axes constant; Resize "nearest, linear"; data types include UINT8.
pub const TENSORRT_10: Rules = Rules {
    name: "tensorrt-10",
    opsets: (9, 20),
    ops: Some(&[OPS_8_5, ADDED_8_6, ADDED_10]),
    constant_inputs: &[
        ("Slice", 3, "axes"),
        ("Pad", 3, "axes"),
        ("Unsqueeze", 1, "axes"),
        ("ReduceMean", 1, "axes"),
        ("ReduceMax", 1, "axes"),
        ("ReduceL2", 1, "axes"),
    ],
    topk_k_below: Some(3840),
    resize_modes: Some(&["nearest", "linear"]),
    io_types: Some(&[
        "FLOAT", "FLOAT16", "BFLOAT16", "INT32", "INT64", "INT8", "UINT8", "BOOL",
    ]),
    // DequantizeLinear "INT8, FP8, INT4", "`x_zero_point` must be zero"; QuantizeLinear
    // "`y_zero_point` must be 0" (of the three, this export only writes INT8).
    qdq: Some(QdqRules {
        types: &["INT8", "FLOAT8E4M3FN", "INT4"],
        zero_points_zero: true,
    }),
};

/// operators.md@8.5-GA, every operator marked "Y".
const OPS_8_5: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "And",
    "ArgMax",
    "ArgMin",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Ceil",
    "Celu",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "Cos",
    "Cosh",
    "CumSum",
    "DepthToSpace",
    "DequantizeLinear",
    "Div",
    "Dropout",
    "Einsum",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "EyeLike",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gemm",
    "GlobalAveragePool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "GridSample",
    "GRU",
    "HardSwish",
    "HardSigmoid",
    "Identity",
    "If",
    "ImageScaler",
    "InstanceNormalization",
    "IsNaN",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "LogSoftmax",
    "Loop",
    "LRN",
    "LSTM",
    "LpNormalization",
    "LpPool",
    "MatMul",
    "Max",
    "MaxPool",
    "Mean",
    "MeanVarianceNormalization",
    "Min",
    "Mod",
    "Mul",
    "Neg",
    "NonMaxSuppression",
    "NonZero",
    "Not",
    "OneHot",
    "Or",
    "Pad",
    "ParametricSoftplus",
    "Pow",
    "PRelu",
    "QuantizeLinear",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Range",
    "Reciprocal",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Resize",
    "ReverseSequence",
    "RNN",
    "RoiAlign",
    "Round",
    "ScaledTanh",
    "Scan",
    "Scatter",
    "ScatterElements",
    "ScatterND",
    "Selu",
    "Shape",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Size",
    "Slice",
    "Softmax",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tan",
    "Tanh",
    "ThresholdedRelu",
    "Tile",
    "TopK",
    "Transpose",
    "Trilu",
    "Unsqueeze",
    "Upsample",
    "Where",
    "Xor",
];

/// operators.md@8.6-GA: the operators marked "Y" that 8.5-GA did not mark (none lost "Y").
const ADDED_8_6: &[&str] = &["GroupNormalization", "IsInf", "LayerNormalization"];

/// operators.md@96e7811 (TensorRT 10.0/10.1 GA): the operators marked "Y" that 8.6-GA did not
/// mark (none lost "Y").
const ADDED_10: &[&str] = &["CastLike", "DeformConv", "Gelu", "Hardmax", "Mish"];

impl Rules {
    /// Whether the parser imports `op` (every standard operator for the generic target).
    pub fn imports(&self, op: &str) -> bool {
        self.ops
            .is_none_or(|lists| lists.iter().any(|list| list.contains(&op)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_release_adds_only_operators_the_one_before_lacked() {
        for rules in [TENSORRT_8_5, TENSORRT_8_6, TENSORRT_10] {
            let lists = rules.ops.unwrap();
            let all: Vec<&str> = lists.iter().flat_map(|l| l.iter().copied()).collect();
            let mut unique = all.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(
                unique.len(),
                all.len(),
                "{}: an operator listed twice",
                rules.name
            );
        }
        assert!(!TENSORRT_8_5.imports("LayerNormalization"));
        assert!(
            TENSORRT_8_6.imports("LayerNormalization") && TENSORRT_10.imports("LayerNormalization")
        );
        assert!(TENSORRT_10.imports("Gelu") && !TENSORRT_8_6.imports("Gelu"));
        assert!(TENSORRT_8_5.imports("TopK") && GENERIC.imports("AnyOpAtAll"));
        assert_eq!(
            [TENSORRT_8_5, TENSORRT_8_6, TENSORRT_10].map(|r| r
                .ops
                .unwrap()
                .iter()
                .map(|l| l.len())
                .sum::<usize>()),
            [142, 145, 150]
        );
    }
}
