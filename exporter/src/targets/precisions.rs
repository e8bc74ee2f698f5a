//! Where an exported graph computes in which precision, read back from the ONNX graph (beside
//! the target checks, which read it the same way): the nodes of an fp16 export that compute in
//! f32 (its f32 islands: LayerNormalization, Softmax, the reductions, the L2-normalising Div,
//! TopK, Resize — model-spec/README.md "Precision"), written as trtexec's `--layerPrecisions`
//! value (`name:fp32,name:fp32,…`, `dlvp inspect --trt-layer-precisions`); and for an int8 export
//! the MatMuls that run in int8 and the computing ops kept in f32 ([`int8_summary`]).
//!
//! A weakly typed TensorRT engine (trtexec `--fp16`, ONNX Runtime's TensorRT provider) treats the
//! graph's Casts as hints and may run an island in fp16; per-layer precision constraints
//! (`--precisionConstraints=obey|prefer --layerPrecisions=…`) keep it in fp32 on TensorRT 8.x,
//! where `--stronglyTyped` does not exist. The ONNX parser names each node's main layer after the
//! node, which every dlvp export names.
//!
//! Element types are propagated through the graph from its inputs, initializers and Casts, each
//! op's outputs typed as the operator table says ([`crate::ops`]).

use std::collections::{BTreeMap, HashMap};

use dlvp_onnx_proto as pb;
use pb::tensor_proto::DataType;

use crate::ops::{self, OutputType};

/// How dlvp's int8 graphs are quantized ([`crate::graph::int8`]).
pub const INT8_SCHEME: &str =
    "QDQ (QuantizeLinear/DequantizeLinear), symmetric int8 with zero points 0: \
weights per output channel, activations per tensor from calibration";

fn elem_type(v: &pb::ValueInfoProto) -> Option<i32> {
    match v.r#type.as_ref()?.value.as_ref()? {
        pb::type_proto::Value::TensorType(t) => Some(t.elem_type),
        _ => None,
    }
}

fn int_attribute(node: &pb::NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// The element type of every value of the graph that can be derived.
fn value_types(graph: &pb::GraphProto) -> HashMap<&str, i32> {
    let mut types: HashMap<&str, i32> = HashMap::new();
    for v in &graph.input {
        if let Some(t) = elem_type(v) {
            types.insert(&v.name, t);
        }
    }
    for t in &graph.initializer {
        types.insert(&t.name, t.data_type);
    }
    for n in &graph.node {
        let input = |i: usize| n.input.get(i).and_then(|i| types.get(i.as_str()).copied());
        let outputs: Vec<Option<i32>> = match ops::kind(&n.op_type).output {
            OutputType::FirstInput => vec![input(0)],
            OutputType::SecondInput => vec![input(1)],
            OutputType::CastTo => vec![int_attribute(n, "to").map(|t| t as i32)],
            OutputType::Int64 => vec![Some(DataType::Int64 as i32)],
            OutputType::Bool => vec![Some(DataType::Bool as i32)],
            OutputType::FirstInputThenInt64 => vec![input(0), Some(DataType::Int64 as i32)],
            OutputType::ValueAttribute => vec![n
                .attribute
                .iter()
                .find(|a| a.name == "value")
                .and_then(|a| a.t.as_ref())
                .map(|t| t.data_type)
                .or(Some(DataType::Float as i32))],
        };
        for (name, t) in n.output.iter().zip(outputs) {
            if let Some(t) = t {
                types.insert(name, t);
            }
        }
    }
    types
}

/// The f32-computing nodes of an fp16 graph, in graph order; `None` when the graph computes
/// nothing in f16 (an fp32 or int8 export: there is no island to keep).
pub fn f32_islands(graph: &pb::GraphProto) -> Option<Vec<&str>> {
    let types = value_types(graph);
    let f16 = DataType::Float16 as i32;
    let f32 = DataType::Float as i32;
    let computes_in = |n: &pb::NodeProto, t: i32| {
        !ops::kind(&n.op_type).moves_data
            && n.output
                .first()
                .and_then(|o| types.get(o.as_str()))
                .is_some_and(|&o| o == t)
    };
    if !graph.node.iter().any(|n| computes_in(n, f16)) {
        return None;
    }
    Some(
        graph
            .node
            .iter()
            .filter(|n| computes_in(n, f32))
            .map(|n| n.name.as_str())
            .collect(),
    )
}

/// trtexec's `--layerPrecisions` value for these layers.
pub fn layer_precisions(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n}:fp32"))
        .collect::<Vec<_>>()
        .join(",")
}

/// For a QDQ graph: the MatMuls that run in int8 (both inputs from DequantizeLinear) and every
/// computing op kept in f32, by kind; `None` for a graph without quantization.
pub fn int8_summary(graph: &pb::GraphProto) -> Option<(usize, BTreeMap<&str, usize>)> {
    if !graph.node.iter().any(|n| n.op_type == "QuantizeLinear") {
        return None;
    }
    let producer: BTreeMap<&str, &str> = graph
        .node
        .iter()
        .flat_map(|n| {
            n.output
                .iter()
                .map(move |o| (o.as_str(), n.op_type.as_str()))
        })
        .collect();
    let dequantized = |name: &String| producer.get(name.as_str()) == Some(&"DequantizeLinear");
    let mut int8 = 0;
    let mut kept: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &graph.node {
        let op = n.op_type.as_str();
        if op == "MatMul" && n.input.iter().all(dequantized) {
            int8 += 1;
        } else if !matches!(op, "QuantizeLinear" | "DequantizeLinear") && !ops::kind(op).moves_data
        {
            *kept.entry(op).or_default() += 1;
        }
    }
    Some((int8, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, name: &str, inputs: &[&str], to: Option<DataType>) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.into()],
            attribute: to
                .map(|t| pb::AttributeProto {
                    name: "to".into(),
                    i: t as i64,
                    r#type: pb::attribute_proto::AttributeType::Int as i32,
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    fn input(name: &str, t: DataType) -> pb::ValueInfoProto {
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: t as i32,
                    shape: None,
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_islands_are_the_f32_computing_nodes_between_casts() {
        let graph = pb::GraphProto {
            input: vec![input("image", DataType::Float)],
            node: vec![
                node("Cast", "image/to_f16", &["image"], Some(DataType::Float16)),
                node("MatMul", "mm", &["image/to_f16", "image/to_f16"], None),
                node("Cast", "mm/to_f32", &["mm"], Some(DataType::Float)),
                node("LayerNormalization", "ln", &["mm/to_f32"], None),
                node("Reshape", "ln/reshape", &["ln"], None),
                node("Softmax", "sm", &["ln/reshape"], None),
                node("Cast", "sm/to_f16", &["sm"], Some(DataType::Float16)),
                node("Add", "add", &["sm/to_f16", "mm"], None),
            ],
            ..Default::default()
        };
        assert_eq!(f32_islands(&graph), Some(vec!["ln", "sm"]));
        assert_eq!(layer_precisions(&["ln", "sm"]), "ln:fp32,sm:fp32");
    }

    #[test]
    fn an_fp32_graph_has_no_islands() {
        let graph = pb::GraphProto {
            input: vec![input("image", DataType::Float)],
            node: vec![node("LayerNormalization", "ln", &["image"], None)],
            ..Default::default()
        };
        assert_eq!(f32_islands(&graph), None);
    }
}
