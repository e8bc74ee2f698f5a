//! The arithmetic a graph does for one input shape, from tract's cost model: the graph is typed
//! for a concrete input ([B, 3, S, S] f32, or [B, S, S, 3] u8 for `image_u8` graphs) and
//! decluttered (ONNX MatMul/Gemm/Conv become tract's EinSum/Conv, whose `cost` counts the
//! multiply-adds of the shapes they really get). FLOPs here are 2 × multiply-adds of those
//! contractions — the work a "FLOP floor" divides by a machine's matmul peak; element-wise ops,
//! softmax and normalisation are not counted (they are memory-bound, and small beside them).

use std::collections::BTreeMap;

use tract_onnx::prelude::*;

use crate::tract_backend::{err, TractError};

/// tract's names of the contraction ops (MatMul/Gemm → EinSum, Conv, ConvTranspose → Deconv).
const CONTRACTIONS: [&str; 3] = ["EinSum", "Conv", "Deconv"];

/// Multiply-adds per kind of node, for one run at the given batch.
#[derive(Debug, Clone, Default)]
pub struct GraphCost {
    pub batch: usize,
    /// Multiply-adds by tract op name (EinSum, Conv, and the few element-wise ops tract also
    /// costs, such as GeluExact), summed over nodes.
    pub fma_by_op: BTreeMap<String, u64>,
}

impl GraphCost {
    /// Multiply-adds of the contractions.
    pub fn contraction_fma(&self) -> u64 {
        self.fma_by_op
            .iter()
            .filter(|(op, _)| CONTRACTIONS.contains(&op.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    /// 2 × the contractions' multiply-adds, for the whole batch.
    pub fn flops(&self) -> u64 {
        2 * self.contraction_fma()
    }
}

/// Counts the contractions' multiply-adds of `bytes` (an exported graph) for `batch` images of
/// side `size`; `u8_input` for graphs exported with `--embed-preprocess`.
pub fn graph_cost(
    bytes: &[u8],
    batch: usize,
    size: usize,
    u8_input: bool,
) -> Result<GraphCost, TractError> {
    let fact: InferenceFact = if u8_input {
        u8::fact([batch, size, size, 3]).into()
    } else {
        f32::fact([batch, 3, size, size]).into()
    };
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(err("load"))?
        .with_input_fact(0, fact)
        .map_err(err("input shape"))?
        .into_typed()
        .map_err(err("type"))?
        .into_decluttered()
        .map_err(err("declutter"))?;
    let mut cost = GraphCost {
        batch,
        ..GraphCost::default()
    };
    for node in model.nodes() {
        let inputs = model.node_input_facts(node.id).map_err(err("cost"))?;
        for (kind, count) in node.op.cost(&inputs).map_err(err("cost"))? {
            if let tract_onnx::tract_core::ops::Cost::FMA(_) = kind {
                let n = count.to_i64().map_err(|e| {
                    TractError::ours("cost", format!("{}: symbolic cost {count}: {e}", node.name))
                })?;
                *cost
                    .fma_by_op
                    .entry(node.op.name().to_string())
                    .or_default() += n as u64;
            }
        }
    }
    Ok(cost)
}
