//! What `dlvp inspect` reports of any ONNX model, read from its protobuf: producer, opset, the
//! inputs and outputs with element types and shapes, node and parameter counts, the op
//! histogram and the metadata. Serialises to the keys of `dlvp inspect --json`.

use std::collections::BTreeMap;

use dlvp_onnx_proto as pb;
use serde::Serialize;

/// A graph input or output: its name, element type (lower case, `float`, `uint8`, ...) and
/// dims (numbers, symbolic names, `?` where unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<String>,
}

impl TensorInfo {
    pub fn of(v: &pb::ValueInfoProto) -> TensorInfo {
        use pb::tensor_shape_proto::dimension::Value;
        let (dtype, shape) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(pb::type_proto::Value::TensorType(t)) => (
                pb::tensor_proto::DataType::try_from(t.elem_type)
                    .map(|d| format!("{d:?}").to_lowercase())
                    .unwrap_or("?".into()),
                t.shape
                    .as_ref()
                    .map(|s| {
                        s.dim
                            .iter()
                            .map(|d| match &d.value {
                                Some(Value::DimValue(n)) => n.to_string(),
                                Some(Value::DimParam(p)) => p.clone(),
                                None => "?".into(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => ("?".into(), vec![]),
        };
        TensorInfo {
            name: v.name.clone(),
            dtype,
            shape,
        }
    }
}

/// A model's structure at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct GraphSummary {
    /// `name version` of the program that wrote it.
    pub producer: String,
    /// (domain, version); the default domain is `""`.
    pub opset: Vec<(String, i64)>,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub metadata: BTreeMap<String, String>,
    /// Nodes per op type.
    pub ops: BTreeMap<String, usize>,
    pub nodes: usize,
    /// Elements of every initializer.
    pub parameters: i64,
    /// Their stored bytes.
    pub parameter_bytes: usize,
}

impl GraphSummary {
    /// The summary of `model` (a model without a graph has no inputs, nodes or parameters).
    pub fn of(model: &pb::ModelProto) -> GraphSummary {
        let empty = pb::GraphProto::default();
        let graph = model.graph.as_ref().unwrap_or(&empty);
        let mut ops: BTreeMap<String, usize> = BTreeMap::new();
        for n in &graph.node {
            *ops.entry(n.op_type.clone()).or_default() += 1;
        }
        GraphSummary {
            producer: format!("{} {}", model.producer_name, model.producer_version),
            opset: model
                .opset_import
                .iter()
                .map(|o| (o.domain.clone(), o.version))
                .collect(),
            inputs: graph.input.iter().map(TensorInfo::of).collect(),
            outputs: graph.output.iter().map(TensorInfo::of).collect(),
            metadata: model
                .metadata_props
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
            ops,
            nodes: graph.node.len(),
            parameters: graph
                .initializer
                .iter()
                .map(|t| t.dims.iter().product::<i64>())
                .sum(),
            parameter_bytes: graph
                .initializer
                .iter()
                .map(|t| t.raw_data.len() + 4 * t.float_data.len() + 8 * t.int64_data.len())
                .sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tiny_export_is_summarised_from_its_protobuf() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/tiny/weights.safetensors");
        let ckpt = std::sync::Arc::new(crate::Checkpoint::open(&path).unwrap());
        let spec = ckpt.embedded_spec().unwrap().unwrap();
        let bytes = crate::export(ckpt, &spec, Default::default())
            .unwrap()
            .to_bytes()
            .unwrap();
        let s = GraphSummary::of(&prost::Message::decode(bytes.as_slice()).unwrap());
        assert_eq!(s.opset, [(String::new(), 17)]);
        assert_eq!(s.inputs[0].name, "image");
        assert_eq!(s.inputs[0].dtype, "float");
        let side = spec.image_size.to_string();
        assert_eq!(s.inputs[0].shape[1..], ["3", side.as_str(), side.as_str()]);
        assert_eq!(s.outputs.len(), 3);
        assert_eq!(s.ops.values().sum::<usize>(), s.nodes);
        assert!(s.parameters > 0 && s.parameter_bytes >= 4 * s.parameters as usize);
        assert_eq!(s.metadata["dlvp.image_size"], side);
    }
}
