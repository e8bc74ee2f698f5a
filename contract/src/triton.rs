//! The graph contract in Triton's terms, shared by the repository `dlvp export --triton-repo`
//! writes and by `dlvp serve`, which answers Triton's (KServe v2) protocol for the same graph:
//! element type names, and each tensor's per-request dims. With `max_batch_size > 0` Triton
//! prepends the batch dimension itself, so dims leave it out — `image` [3, S, S] (or `image_u8`
//! [S, S, 3]), `anomaly_map` [1, S, S], `topk_indices` [K]. The graph's `anomaly_score` is [B],
//! whose per-request shape is a scalar, which Triton's `dims` cannot state: it is declared
//! `dims: [1]` with `reshape { shape: [] }`, Triton's documented way.

use crate::graph::{ElemType, TensorDesc};

/// Triton's model-configuration name of an element type (`TYPE_FP32`, ...).
pub fn config_data_type(elem: ElemType) -> &'static str {
    match elem {
        ElemType::F32 => "TYPE_FP32",
        ElemType::U8 => "TYPE_UINT8",
        ElemType::I64 => "TYPE_INT64",
    }
}

/// The KServe v2 protocol's datatype name of an element type (`FP32`, ...).
pub fn protocol_datatype(elem: ElemType) -> &'static str {
    match elem {
        ElemType::F32 => "FP32",
        ElemType::U8 => "UINT8",
        ElemType::I64 => "INT64",
    }
}

/// A tensor of the contract as Triton declares it: per-request dims, after the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TritonTensor {
    pub name: &'static str,
    pub elem: ElemType,
    /// The dims after the batch; `[1]` for a scalar per request.
    pub dims: Vec<usize>,
    /// The graph has no per-item dimension (`anomaly_score`): the config says `reshape []`.
    pub scalar_per_item: bool,
}

impl TritonTensor {
    pub fn from_desc(d: &TensorDesc) -> TritonTensor {
        let dims = d.per_item_dims();
        let scalar = dims.is_empty();
        TritonTensor {
            name: d.name,
            elem: d.elem,
            dims: if scalar { vec![1] } else { dims },
            scalar_per_item: scalar,
        }
    }

    /// Elements per image.
    pub fn per_item(&self) -> usize {
        self.dims.iter().product()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{outputs, InputKind};

    #[test]
    fn the_score_is_a_reshaped_scalar_and_the_rest_drop_the_batch() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../model-spec/tiny.yaml");
        let spec =
            crate::Spec::from_yaml(&std::fs::read_to_string(path).unwrap(), "tiny.yaml").unwrap();
        let outs: Vec<TritonTensor> = outputs(&spec).iter().map(TritonTensor::from_desc).collect();
        assert_eq!(
            (outs[0].dims.clone(), outs[0].scalar_per_item),
            (vec![1], true)
        );
        let s = spec.image_size;
        assert_eq!(outs[1].dims, [1, s, s]);
        assert_eq!(outs[2].dims, [spec.slfs.top_k]);
        let input = TritonTensor::from_desc(&InputKind::ImageU8.desc(s));
        assert_eq!(
            (input.dims.clone(), input.per_item()),
            (vec![s, s, 3], s * s * 3)
        );
        assert_eq!(config_data_type(input.elem), "TYPE_UINT8");
        assert_eq!(protocol_datatype(outs[2].elem), "INT64");
    }
}
