//! `dlvp inspect --trt-layer-precisions`: the nodes of an `--fp16` export that compute in f32
//! (its f32 islands: LayerNormalization, Softmax, the reductions, the L2-normalising Div, TopK,
//! Resize — model-spec/README.md "Precision"), written as trtexec's `--layerPrecisions` value
//! (`name:fp32,name:fp32,…`).
//!
//! A weakly typed TensorRT engine (trtexec `--fp16`, ONNX Runtime's TensorRT provider) treats the
//! graph's Casts as hints and may run an island in fp16; per-layer precision constraints
//! (`--precisionConstraints=obey|prefer --layerPrecisions=…`) keep it in fp32 on TensorRT 8.x,
//! where `--stronglyTyped` does not exist. The ONNX parser names each node's main layer after the
//! node, which every dlvp export names.
//!
//! Element types are propagated through the graph from its inputs, initializers and Casts; an op
//! not listed below yields its first input's type.

use std::collections::HashMap;

use dlvp_onnx_proto as pb;
use pb::tensor_proto::DataType;

/// Ops that compute nothing a precision could change (the same list the int8 summary uses).
use super::inspect::DATA_MOVEMENT;

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
        let first = n.input.first().and_then(|i| types.get(i.as_str()).copied());
        let bool_ = DataType::Bool as i32;
        let int64 = DataType::Int64 as i32;
        let outputs: Vec<Option<i32>> = match n.op_type.as_str() {
            "Cast" => vec![int_attribute(n, "to").map(|t| t as i32)],
            "Shape" | "Size" | "ArgMax" | "ArgMin" | "NonZero" => vec![Some(int64)],
            "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And"
            | "Or" | "IsNaN" | "IsInf" => vec![Some(bool_)],
            "TopK" => vec![first, Some(int64)],
            "Where" => vec![n.input.get(1).and_then(|i| types.get(i.as_str()).copied())],
            "Constant" | "ConstantOfShape" => vec![n
                .attribute
                .iter()
                .find(|a| a.name == "value")
                .and_then(|a| a.t.as_ref())
                .map(|t| t.data_type)
                .or(Some(DataType::Float as i32))],
            _ => vec![first],
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
        !DATA_MOVEMENT.contains(&n.op_type.as_str())
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
