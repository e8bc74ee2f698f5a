//! The messages declare every field of onnx.proto: a model decoded and encoded again is the same
//! bytes, whether it is the exporter's output or uses fields the exporter never writes.

use dlvp_onnx_proto::*;
use prost::Message;

#[test]
fn the_embedded_demo_model_round_trips_byte_for_byte() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/demo/dlvp-clip-demo.onnx"
    );
    let bytes = std::fs::read(path).unwrap();
    let model = ModelProto::decode(&bytes[..]).unwrap();
    assert!(model.graph.as_ref().unwrap().initializer.len() > 10);
    assert!(model.encode_to_vec() == bytes);
    let mut streamed = Vec::new();
    encode_to_writer(&model, &mut streamed).unwrap();
    assert!(streamed == bytes);
}

#[test]
fn fields_the_exporter_never_writes_survive_a_round_trip() {
    let entry = |k: &str| StringStringEntryProto {
        key: k.into(),
        value: "v".into(),
    };
    let tensor = TensorProto {
        dims: vec![2],
        data_type: tensor_proto::DataType::Int4 as i32,
        float_data: vec![1.5],
        int32_data: vec![-3],
        int64_data: vec![7],
        double_data: vec![0.25],
        uint64_data: vec![9],
        string_data: vec![b"s".to_vec()],
        segment: Some(tensor_proto::Segment { begin: 1, end: 2 }),
        data_location: Some(tensor_proto::DataLocation::Default as i32),
        metadata_props: vec![entry("t")],
        ..Default::default()
    };
    let sequence = TypeProto {
        value: Some(type_proto::Value::SequenceType(type_proto::Sequence {
            elem_type: Some(Box::new(TypeProto {
                value: Some(type_proto::Value::MapType(type_proto::Map {
                    key_type: 7,
                    value_type: Some(Box::new(TypeProto {
                        denotation: "IMAGE".into(),
                        ..Default::default()
                    })),
                })),
                ..Default::default()
            })),
        })),
        ..Default::default()
    };
    let graph = GraphProto {
        name: "g".into(),
        sparse_initializer: vec![SparseTensorProto {
            values: Some(tensor.clone()),
            indices: Some(tensor.clone()),
            dims: vec![4],
        }],
        value_info: vec![ValueInfoProto {
            name: "x".into(),
            r#type: Some(sequence.clone()),
            metadata_props: vec![entry("vi")],
            ..Default::default()
        }],
        quantization_annotation: vec![TensorAnnotation {
            tensor_name: "x".into(),
            quant_parameter_tensor_names: vec![entry("SCALE_TENSOR")],
        }],
        node: vec![NodeProto {
            op_type: "Custom".into(),
            domain: "com.example".into(),
            overload: "o".into(),
            attribute: vec![AttributeProto {
                name: "a".into(),
                ref_attr_name: "r".into(),
                r#type: attribute_proto::AttributeType::TypeProtos as i32,
                tp: Some(sequence.clone()),
                type_protos: vec![sequence],
                sparse_tensors: vec![SparseTensorProto::default()],
                t: Some(tensor),
                ..Default::default()
            }],
            ..Default::default()
        }],
        metadata_props: vec![entry("g")],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: 10,
        graph: Some(graph.clone()),
        training_info: vec![TrainingInfoProto {
            initialization: Some(graph.clone()),
            algorithm: Some(graph),
            initialization_binding: vec![entry("i")],
            update_binding: vec![entry("u")],
        }],
        functions: vec![FunctionProto {
            name: "f".into(),
            overload: "o".into(),
            attribute_proto: vec![AttributeProto::default()],
            ..Default::default()
        }],
        ..Default::default()
    };
    let bytes = model.encode_to_vec();
    let back = ModelProto::decode(&bytes[..]).unwrap();
    assert_eq!(back, model);
    assert!(back.encode_to_vec() == bytes);
}
