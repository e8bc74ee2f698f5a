//! [`Graph`] → ONNX `ModelProto` bytes (opset 17, IR 8), through tract's prost types of
//! onnx.proto3: no protoc, no second proto definition. The only module that knows protobuf.

use dlvp_onnx_proto as pb;
use prost::Message;

use crate::graph::{Attr, DType, Dim, Graph, Initializer, Wire};

pub const OPSET: i64 = 17;
const IR_VERSION: i64 = 8;
/// The name of the dynamic batch dimension in the graph's inputs and outputs.
pub const BATCH_PARAM: &str = "B";

fn elem_type(dtype: DType) -> i32 {
    use pb::tensor_proto::DataType;
    (match dtype {
        DType::F32 => DataType::Float,
        DType::F16 => DataType::Float16,
        DType::I64 => DataType::Int64,
        DType::U8 => DataType::Uint8,
        DType::I8 => DataType::Int8,
    }) as i32
}

fn value_info(wire: &Wire) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = wire
        .shape
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => Value::DimValue(*n as i64),
                Dim::Batch => Value::DimParam(BATCH_PARAM.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: wire.name.clone(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem_type(wire.dtype),
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attribute(name: &str, value: &Attr) -> pb::AttributeProto {
    use pb::attribute_proto::AttributeType;
    let mut a = pb::AttributeProto {
        name: name.to_string(),
        ..Default::default()
    };
    match value {
        Attr::Int(i) => (a.i, a.r#type) = (*i, AttributeType::Int as i32),
        Attr::Ints(v) => (a.ints, a.r#type) = (v.clone(), AttributeType::Ints as i32),
        Attr::Float(f) => (a.f, a.r#type) = (*f, AttributeType::Float as i32),
        Attr::Str(s) => (a.s, a.r#type) = (s.as_bytes().to_vec(), AttributeType::String as i32),
    }
    a
}

/// The model as a `ModelProto`.
pub fn to_model_proto(graph: &Graph, name: &str) -> pb::ModelProto {
    model_proto(graph, name, |t| t.raw.clone())
}

/// The message with each initializer's data given by `raw`.
fn model_proto(
    graph: &Graph,
    name: &str,
    mut raw: impl FnMut(&Initializer) -> Vec<u8>,
) -> pb::ModelProto {
    let node = graph
        .nodes
        .iter()
        .map(|n| pb::NodeProto {
            name: n.name.clone(),
            op_type: n.op.to_string(),
            input: n.inputs.clone(),
            output: n.outputs.clone(),
            attribute: n.attrs.iter().map(|(k, v)| attribute(k, v)).collect(),
            ..Default::default()
        })
        .collect();
    let initializer = graph
        .initializers
        .iter()
        .map(|i| pb::TensorProto {
            name: i.name.clone(),
            dims: i.dims.iter().map(|&d| d as i64).collect(),
            data_type: elem_type(i.dtype),
            raw_data: raw(i),
            ..Default::default()
        })
        .collect();
    pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "dlvp".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        graph: Some(pb::GraphProto {
            name: name.to_string(),
            node,
            initializer,
            input: graph.inputs.iter().map(value_info).collect(),
            output: graph.outputs.iter().map(value_info).collect(),
            ..Default::default()
        }),
        metadata_props: graph
            .metadata
            .iter()
            .map(|(k, v)| pb::StringStringEntryProto {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        ..Default::default()
    }
}

/// The message with only the constants that stay inside an external-data model (the small
/// ones): its structure, for checks that must not wait for the data to be written.
pub fn model_proto_structure(graph: &Graph, name: &str) -> pb::ModelProto {
    model_proto(graph, name, |t| {
        if t.raw.len() < EXTERNAL_MIN_BYTES {
            t.raw.clone()
        } else {
            Vec::new()
        }
    })
}

/// [`to_model_proto`] taking the graph: each initializer's bytes move into the message instead of
/// being copied, so the weights are held once, not twice.
pub fn into_model_proto(mut graph: Graph, name: &str) -> pb::ModelProto {
    let mut raws = graph
        .initializers
        .iter_mut()
        .map(|t| std::mem::take(&mut t.raw))
        .collect::<Vec<_>>()
        .into_iter();
    model_proto(&graph, name, |_| raws.next().unwrap_or_default())
}

/// The serialized model.
pub fn to_bytes(graph: &Graph, name: &str) -> Vec<u8> {
    to_model_proto(graph, name).encode_to_vec()
}

/// Protobuf cannot hold a message of 2 GiB; above this many bytes of constants the weights must
/// go to an external data file.
pub const EXTERNAL_DATA_THRESHOLD: usize = 1800 << 20;
/// Constants smaller than this stay inside the model (ONNX's own convention).
const EXTERNAL_MIN_BYTES: usize = 1024;
/// Offsets in the data file are page-aligned so runtimes can map it.
const EXTERNAL_ALIGN: usize = 4096;

/// The model with its large constants in a separate file named `data_file` (relative to the
/// model's folder, as the ONNX external-data convention reads it): (model bytes, data bytes).
pub fn to_bytes_external(graph: &Graph, name: &str, data_file: &str) -> (Vec<u8>, Vec<u8>) {
    let mut data = Vec::new();
    let model = to_model_proto_external(graph, name, data_file, &mut data)
        .expect("writing to memory cannot fail");
    (model.encode_to_vec(), data)
}

/// [`to_bytes_external`] streaming: the large constants are written to `data` straight from the
/// graph (no copy), and the model that points at them is returned.
pub fn to_model_proto_external(
    graph: &Graph,
    name: &str,
    data_file: &str,
    mut data: impl std::io::Write,
) -> std::io::Result<pb::ModelProto> {
    let external = |t: &Initializer| t.raw.len() >= EXTERNAL_MIN_BYTES;
    let mut model = model_proto_structure(graph, name);
    let entry = |k: &str, v: String| pb::StringStringEntryProto {
        key: k.to_string(),
        value: v,
    };
    let protos = &mut model
        .graph
        .as_mut()
        .expect("built with a graph")
        .initializer;
    let mut offset = 0usize;
    for (t, proto) in graph.initializers.iter().zip(protos.iter_mut()) {
        if !external(t) {
            continue;
        }
        let aligned = offset.div_ceil(EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
        data.write_all(&vec![0; aligned - offset])?;
        data.write_all(&t.raw)?;
        proto.external_data = vec![
            entry("location", data_file.to_string()),
            entry("offset", aligned.to_string()),
            entry("length", t.raw.len().to_string()),
        ];
        proto.data_location = Some(pb::tensor_proto::DataLocation::External as i32);
        offset = aligned + t.raw.len();
    }
    data.flush()?;
    Ok(model)
}
