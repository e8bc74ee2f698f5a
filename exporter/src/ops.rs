//! What dlvp knows about the ONNX operators it writes and reads, in one table: how the fp16
//! pass treats each ([`F16Rule`]; model-spec/README.md "Precision" names the f32 islands),
//! whether it only moves data (nothing a precision could change: the int8 summary and the fp32
//! islands of `dlvp inspect` skip those), and the element type of its outputs (the type
//! propagation behind `--trt-layer-precisions`). What each export target's parser imports is
//! [`crate::targets`]'s, per release.
//!
//! An operator missing from the table is computing, takes no side in the fp16 pass, and yields
//! its first input's type.

/// How the fp16 pass treats an operator's float inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum F16Rule {
    /// Every float input in f16; float outputs f16 (matrix and elementwise work).
    Half,
    /// Every float input in f32; float outputs f32 (the numerically sensitive f32 islands).
    Single,
    /// The output type follows input 0; Concat's float inputs all take input 0's type.
    Follow,
    /// Leaves its inputs alone (Cast, Equal, ...).
    Any,
}

/// The element type of an operator's outputs, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputType {
    /// Input 0's type.
    FirstInput,
    /// Input 1's type (Where: the condition is input 0).
    SecondInput,
    /// The `to` attribute (Cast).
    CastTo,
    /// The `value` attribute's type, f32 without one (Constant, ConstantOfShape).
    ValueAttribute,
    Int64,
    Bool,
    /// Input 0's type, then int64 (TopK: values and indices).
    FirstInputThenInt64,
}

/// One operator as dlvp sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpKind {
    pub name: &'static str,
    pub f16: F16Rule,
    /// Moves or reshapes data and computes nothing a precision could change.
    pub moves_data: bool,
    pub output: OutputType,
}

const fn op(name: &'static str, f16: F16Rule, moves_data: bool, output: OutputType) -> OpKind {
    OpKind {
        name,
        f16,
        moves_data,
        output,
    }
}

use F16Rule::{Any, Follow, Half, Single};
use OutputType::{
    Bool, CastTo, FirstInput, FirstInputThenInt64, Int64, SecondInput, ValueAttribute,
};

/// Every operator dlvp has something to say about.
pub const OPS: &[OpKind] = &[
    op("Add", Half, false, FirstInput),
    op("Sub", Half, false, FirstInput),
    op("Mul", Half, false, FirstInput),
    op("MatMul", Half, false, FirstInput),
    op("Conv", Half, false, FirstInput),
    op("ConvTranspose", Half, false, FirstInput),
    op("Erf", Half, false, FirstInput),
    op("Sigmoid", Half, false, FirstInput),
    op("LayerNormalization", Single, false, FirstInput),
    op("Softmax", Single, false, FirstInput),
    op("ReduceL2", Single, false, FirstInput),
    op("ReduceMean", Single, false, FirstInput),
    op("ReduceMax", Single, false, FirstInput),
    op("TopK", Single, false, FirstInputThenInt64),
    op("Div", Single, false, FirstInput),
    op("Resize", Single, false, FirstInput),
    op("Reshape", Follow, true, FirstInput),
    op("Transpose", Follow, true, FirstInput),
    op("Slice", Follow, true, FirstInput),
    op("Concat", Follow, true, FirstInput),
    op("Unsqueeze", Follow, true, FirstInput),
    op("Pad", Follow, true, FirstInput),
    op("Squeeze", Any, true, FirstInput),
    op("Gather", Any, true, FirstInput),
    op("Identity", Any, true, FirstInput),
    op("Expand", Any, true, FirstInput),
    op("Split", Any, true, FirstInput),
    op("Flatten", Any, true, FirstInput),
    op("Cast", Any, true, CastTo),
    op("Shape", Any, true, Int64),
    op("Constant", Any, true, ValueAttribute),
    op("ConstantOfShape", Any, false, ValueAttribute),
    op("Size", Any, false, Int64),
    op("ArgMax", Any, false, Int64),
    op("ArgMin", Any, false, Int64),
    op("NonZero", Any, false, Int64),
    op("Equal", Any, false, Bool),
    op("Less", Any, false, Bool),
    op("Greater", Any, false, Bool),
    op("LessOrEqual", Any, false, Bool),
    op("GreaterOrEqual", Any, false, Bool),
    op("Not", Any, false, Bool),
    op("And", Any, false, Bool),
    op("Or", Any, false, Bool),
    op("IsNaN", Any, false, Bool),
    op("IsInf", Any, false, Bool),
    op("Where", Any, false, SecondInput),
];

/// What dlvp knows about `name` (the default for an operator not in [`OPS`]).
pub fn kind(name: &str) -> OpKind {
    OPS.iter()
        .copied()
        .find(|k| k.name == name)
        .unwrap_or(OpKind {
            name: "",
            f16: Any,
            moves_data: false,
            output: FirstInput,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_is_listed_once() {
        let mut names: Vec<&str> = OPS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn the_f32_islands_compute_and_the_data_movers_follow_or_stay_out() {
        for island in ["LayerNormalization", "Softmax", "TopK", "Resize", "Div"] {
            assert_eq!(kind(island).f16, Single, "{island}");
            assert!(!kind(island).moves_data);
        }
        for k in OPS.iter().filter(|k| k.f16 == Follow) {
            assert!(k.moves_data, "{} follows its input but computes", k.name);
        }
        assert_eq!(kind("Gelu").f16, Any);
        assert!(!kind("Gelu").moves_data);
    }
}
