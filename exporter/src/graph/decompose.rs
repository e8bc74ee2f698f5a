//! LayerNormalization rewritten into primitive ops, for parsers without its importer (TensorRT
//! 8.5, see the rule tables of `crate::targets`): over the last axis,
//! `d = x − mean(x)`, `y = d / sqrt(mean(d²) + ε) · γ + β` — the function body ONNX gives the
//! op (opset 17), in f32. Applied after the fp16 rewrite, where LayerNorm stays in f32.
//!
//! d² is written `Pow(d, 2)` with the `ReduceMean` of the variance as the very next node: ONNX
//! Runtime's TensorRT provider, under `trt_fp16_enable` with `trt_layer_norm_fp32_fallback`,
//! keeps a layer in f32 only where an elementwise POW layer is immediately followed by a REDUCE
//! layer (`tensorrt_execution_provider.cc`: "Force Pow + Reduce ops in layer norm to run in FP32
//! to avoid overflow"). `Mul(d, d)` would leave the variance — the sum of squares that
//! overflows f16 — in f16. On CPUs `Pow(d, 2)` equals `d · d`.

use super::{Attr, DType, Graph, Initializer, Node};

/// One primitive node of the decomposition: (op, output suffix, inputs, attributes).
type Step = (
    &'static str,
    &'static str,
    Vec<String>,
    Vec<(&'static str, Attr)>,
);

/// Replaces every LayerNormalization node of `graph` (all normalise the last axis) in place.
pub fn layer_norm(graph: &mut Graph) {
    let mut nodes = Vec::with_capacity(graph.nodes.len());
    for node in std::mem::take(&mut graph.nodes) {
        if node.op != "LayerNormalization" {
            nodes.push(node);
            continue;
        }
        let epsilon = node
            .attrs
            .iter()
            .find_map(|(k, v)| match (k, v) {
                (&"epsilon", Attr::Float(e)) => Some(*e),
                _ => None,
            })
            .unwrap_or(1e-5);
        const TWO: &str = "layer_norm_two";
        if !graph.initializers.iter().any(|t| t.name == TWO) {
            graph.initializers.push(Initializer {
                name: TWO.into(),
                dtype: DType::F32,
                dims: vec![],
                raw: 2f32.to_le_bytes().to_vec(),
            });
        }
        let eps_name = format!("layer_norm_epsilon_{:08x}", epsilon.to_bits());
        if !graph.initializers.iter().any(|t| t.name == eps_name) {
            graph.initializers.push(Initializer {
                name: eps_name.clone(),
                dtype: DType::F32,
                dims: vec![],
                raw: epsilon.to_le_bytes().to_vec(),
            });
        }
        let base = node.name.clone();
        let wire = |suffix: &str| format!("{base}/{suffix}");
        let mean_last = || vec![("axes", Attr::Ints(vec![-1])), ("keepdims", Attr::Int(1))];
        let (x, gamma, beta) = (
            node.inputs[0].clone(),
            node.inputs[1].clone(),
            node.inputs[2].clone(),
        );
        let y = node.outputs[0].clone();
        let steps: [Step; 9] = [
            ("ReduceMean", "mean", vec![x.clone()], mean_last()),
            ("Sub", "centered", vec![x, wire("mean")], vec![]),
            ("Pow", "squared", vec![wire("centered"), TWO.into()], vec![]),
            ("ReduceMean", "variance", vec![wire("squared")], mean_last()),
            (
                "Add",
                "variance_eps",
                vec![wire("variance"), eps_name],
                vec![],
            ),
            ("Sqrt", "std", vec![wire("variance_eps")], vec![]),
            (
                "Div",
                "normalized",
                vec![wire("centered"), wire("std")],
                vec![],
            ),
            ("Mul", "scaled", vec![wire("normalized"), gamma], vec![]),
            ("Add", "shifted", vec![wire("scaled"), beta], vec![]),
        ];
        let last = steps.len() - 1;
        for (i, (op, suffix, inputs, attrs)) in steps.into_iter().enumerate() {
            nodes.push(Node {
                name: wire(suffix),
                op,
                inputs,
                outputs: vec![if i == last { y.clone() } else { wire(suffix) }],
                output_dtypes: vec![DType::F32],
                attrs,
            });
        }
    }
    graph.nodes = nodes;
}
