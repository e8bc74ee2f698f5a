//! Editing an exported ONNX graph in tests, to build the broken or disallowed graphs no exporter
//! writes (no metadata, a wrong input shape, a run-time TopK K, ...).

use std::path::Path;

use dlvp_onnx_proto as pb;
use prost::Message;

/// The bytes of the model at `model` after `edit`.
pub fn edited(model: &Path, edit: impl FnOnce(&mut pb::ModelProto)) -> Vec<u8> {
    let mut proto = pb::ModelProto::decode(&std::fs::read(model).unwrap()[..]).unwrap();
    edit(&mut proto);
    proto.encode_to_vec()
}

/// The dimensions of the graph's first input.
pub fn input_dims(model: &mut pb::ModelProto) -> &mut Vec<pb::tensor_shape_proto::Dimension> {
    let input = &mut model.graph.as_mut().unwrap().input[0];
    let Some(pb::type_proto::Value::TensorType(t)) =
        input.r#type.as_mut().and_then(|t| t.value.as_mut())
    else {
        panic!("tensor input");
    };
    &mut t.shape.as_mut().unwrap().dim
}

/// A fixed dimension.
pub fn dim(n: i64) -> Option<pb::tensor_shape_proto::dimension::Value> {
    Some(pb::tensor_shape_proto::dimension::Value::DimValue(n))
}
