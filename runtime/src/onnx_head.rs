//! An ONNX model's structure without its weights: the ModelProto fields the runtime inspects
//! (metadata, graph inputs and outputs, initializer names and data locations, node attributes' tensors),
//! decoded by prost message types that leave out every other field — prost skips unknown fields
//! without copying them, so the weights' `raw_data` is never duplicated. A full decode of a
//! ViT-B/16 graph costs another 0.5 GB at load; this costs kilobytes. Field numbers are onnx.proto's.

use dlvp_onnx_proto as pb;
use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct TensorHead {
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<pb::StringStringEntryProto>,
    #[prost(int32, optional, tag = "14")]
    pub data_location: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeHead {
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorHead>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeHead {
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeHead>,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphHead {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeHead>,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorHead>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<pb::ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<pb::ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ModelHead {
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphHead>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<pb::StringStringEntryProto>,
}

impl ModelHead {
    pub fn decode_from(bytes: &[u8]) -> Result<ModelHead, prost::DecodeError> {
        ModelHead::decode(bytes)
    }

    /// Whether any initializer or node-attribute tensor keeps its data in an external file.
    pub fn has_external_data(&self) -> bool {
        let external = |t: &TensorHead| {
            t.data_location == Some(pb::tensor_proto::DataLocation::External as i32)
        };
        self.graph.as_ref().is_some_and(|g| {
            g.initializer.iter().any(external)
                || g.node
                    .iter()
                    .flat_map(|n| &n.attribute)
                    .filter_map(|a| a.t.as_ref())
                    .any(external)
        })
    }

    /// The same structure as a `pb::ModelProto` (initializers by name only, no data).
    pub fn to_model_proto(&self) -> pb::ModelProto {
        pb::ModelProto {
            metadata_props: self.metadata_props.clone(),
            graph: self.graph.as_ref().map(|g| pb::GraphProto {
                input: g.input.clone(),
                output: g.output.clone(),
                initializer: g
                    .initializer
                    .iter()
                    .map(|t| pb::TensorProto {
                        name: t.name.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}
