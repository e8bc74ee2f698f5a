//! Request tensors to the graph's input, and the graph's outputs to response tensors — shared by
//! the HTTP and the gRPC front ends, so both check a request the same way and answer the same
//! bytes.
//!
//! An input must be the model's one input (`image` FP32 `[B, 3, S, S]` or `image_u8` UINT8
//! `[B, S, S, 3]`) with `1 ≤ B ≤ max_batch_size`, and carry exactly `B × per-image` elements:
//! raw little-endian bytes (HTTP's binary extension, gRPC's `raw_input_contents`) or typed
//! values (HTTP JSON `data`, flattened or nested; gRPC `contents`). Every mismatch is a
//! [`BadRequest`] that names the tensor, what was expected and what came.

use dlvp_contract::graph::ElemType;
use dlvp_runtime::{GraphInput, Outputs};
use ndarray::ArrayD;

use crate::model::{datatype, ServedModel, Tensor};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadKind {
    /// HTTP 400, gRPC INVALID_ARGUMENT.
    Invalid,
    /// HTTP 404, gRPC NOT_FOUND.
    NotFound,
    /// HTTP 413 (a body over --max-body-mib, an image over --max-pixels).
    TooLarge,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BadRequest {
    pub kind: BadKind,
    pub message: String,
}

pub fn invalid(message: impl Into<String>) -> BadRequest {
    BadRequest {
        kind: BadKind::Invalid,
        message: message.into(),
    }
}

pub fn not_found(message: impl Into<String>) -> BadRequest {
    BadRequest {
        kind: BadKind::NotFound,
        message: message.into(),
    }
}

/// An input tensor's elements as they came.
pub enum Data<'a> {
    /// Little-endian bytes, row-major.
    Raw(&'a [u8]),
    F32(Vec<f32>),
    /// Integers (UINT8 values arrive as JSON numbers or gRPC `uint_contents`).
    Uint(Vec<u64>),
}

fn shape_text(shape: &[i64]) -> String {
    format!(
        "[{}]",
        shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The model's expected shape for a request, `B` for the batch.
fn expected_text(t: &Tensor) -> String {
    format!(
        "[B, {}]",
        t.dims
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A request must carry exactly the model's one input.
pub fn one_input(model: &ServedModel, count: usize) -> Result<(), BadRequest> {
    if count == 1 {
        return Ok(());
    }
    Err(invalid(format!(
        "expected 1 input ('{}') for model '{}', got {count}",
        model.input.name, model.name
    )))
}

/// Checks one request input and builds the graph's input batch from it.
pub fn graph_input(
    model: &ServedModel,
    name: &str,
    dtype: &str,
    shape: &[i64],
    data: Data,
) -> Result<GraphInput, BadRequest> {
    let want = &model.input;
    if name != want.name {
        return Err(invalid(format!(
            "unexpected inference input '{name}' for model '{}': its input is '{}'",
            model.name, want.name
        )));
    }
    if dtype != datatype(want.elem) {
        return Err(invalid(format!(
            "input '{name}': datatype {dtype}, but the model takes {}",
            datatype(want.elem)
        )));
    }
    let fits = shape.len() == want.dims.len() + 1
        && shape[1..]
            .iter()
            .zip(&want.dims)
            .all(|(&got, &d)| got == d as i64);
    if !fits {
        return Err(invalid(format!(
            "input '{name}': shape {}, but the model takes {} (B = 1 to {})",
            shape_text(shape),
            expected_text(want),
            model.max_batch
        )));
    }
    let batch = shape[0];
    if batch < 1 || batch as usize > model.max_batch {
        return Err(invalid(format!(
            "input '{name}': batch size {batch} must be between 1 and max_batch_size {} (the server's max_batch_size)",
            model.max_batch
        )));
    }
    let batch = batch as usize;
    let count = batch * want.per_item();
    let dims: Vec<usize> = std::iter::once(batch)
        .chain(want.dims.iter().copied())
        .collect();
    let elem_bytes = match want.elem {
        ElemType::F32 => 4,
        ElemType::U8 => 1,
        ElemType::I64 => 8,
    };
    let wrong_count = |got: usize, unit: &str| {
        invalid(format!(
            "input '{name}': {got} {unit} for shape {} ({count} elements of {}, {} bytes)",
            shape_text(shape),
            datatype(want.elem),
            count * elem_bytes
        ))
    };
    Ok(match (want.elem, data) {
        (ElemType::F32, Data::Raw(bytes)) => {
            if bytes.len() != count * 4 {
                return Err(wrong_count(bytes.len(), "bytes"));
            }
            let values = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            GraphInput::Image(ArrayD::from_shape_vec(dims, values).expect("counted"))
        }
        (ElemType::F32, Data::F32(values)) => {
            if values.len() != count {
                return Err(wrong_count(values.len(), "values"));
            }
            GraphInput::Image(ArrayD::from_shape_vec(dims, values).expect("counted"))
        }
        (ElemType::U8, Data::Raw(bytes)) => {
            if bytes.len() != count {
                return Err(wrong_count(bytes.len(), "bytes"));
            }
            GraphInput::ImageU8(ArrayD::from_shape_vec(dims, bytes.to_vec()).expect("counted"))
        }
        (ElemType::U8, Data::Uint(values)) => {
            if values.len() != count {
                return Err(wrong_count(values.len(), "values"));
            }
            if let Some(v) = values.iter().find(|&&v| v > 255) {
                return Err(invalid(format!(
                    "input '{name}': {v} is not a UINT8 value (0 to 255)"
                )));
            }
            let bytes = values.into_iter().map(|v| v as u8).collect();
            GraphInput::ImageU8(ArrayD::from_shape_vec(dims, bytes).expect("counted"))
        }
        (ElemType::F32, Data::Uint(_)) | (ElemType::U8, Data::F32(_)) | (ElemType::I64, _) => {
            return Err(invalid(format!(
                "input '{name}': its data is not {} values",
                datatype(want.elem)
            )))
        }
    })
}

/// One output of a request: shape with the batch first, and its elements as little-endian bytes.
pub struct OutputTensor<'a> {
    pub tensor: &'a Tensor,
    pub shape: Vec<i64>,
    pub raw: Vec<u8>,
}

impl OutputTensor<'_> {
    /// The elements as JSON numbers (HTTP responses without binary data).
    pub fn json_data(&self) -> serde_json::Value {
        match self.tensor.elem {
            ElemType::I64 => self
                .raw
                .chunks_exact(8)
                .map(|b| {
                    serde_json::Value::from(i64::from_le_bytes(b.try_into().expect("8 bytes")))
                })
                .collect(),
            ElemType::U8 => self
                .raw
                .iter()
                .map(|&b| serde_json::Value::from(b))
                .collect(),
            ElemType::F32 => self
                .raw
                .chunks_exact(4)
                .map(|b| {
                    serde_json::Value::from(f32::from_le_bytes(b.try_into().expect("4 bytes")))
                })
                .collect(),
        }
    }
}

/// The named output of a request's `outputs`, in the served shape ([B, 1] for the score).
pub fn output<'a>(tensor: &'a Tensor, outputs: &Outputs) -> OutputTensor<'a> {
    let batch = outputs.anomaly_score.len();
    let mut shape = vec![batch as i64];
    shape.extend(tensor.dims.iter().map(|&d| d as i64));
    let raw = match tensor.name {
        dlvp_contract::graph::OUTPUT_SCORE => le_f32(outputs.anomaly_score.iter()),
        dlvp_contract::graph::OUTPUT_MAP => le_f32(outputs.anomaly_map.iter()),
        _ => outputs
            .topk_indices
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    };
    OutputTensor { tensor, shape, raw }
}

fn le_f32<'a>(values: impl Iterator<Item = &'a f32>) -> Vec<u8> {
    values.flat_map(|v| v.to_le_bytes()).collect()
}

/// The outputs a request asked for by name (all three when it named none), checked.
pub fn requested<'a>(
    model: &'a ServedModel,
    names: &[&str],
) -> Result<Vec<&'a Tensor>, BadRequest> {
    if names.is_empty() {
        return Ok(model.outputs.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            model.output(n).ok_or_else(|| {
                invalid(format!(
                    "unexpected inference output '{n}' for model '{}': its outputs are {}",
                    model.name,
                    model
                        .outputs
                        .iter()
                        .map(|t| t.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        })
        .collect()
}
