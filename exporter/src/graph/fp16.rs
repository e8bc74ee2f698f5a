//! The fp16 variant of a built graph: weights stored and matrix/elementwise work done in f16,
//! numerically sensitive ops kept in f32 (LayerNormalization, Softmax, the reductions, the
//! L2-normalising Div, TopK, Resize: [`crate::ops`] says which rule each op follows), the graph's inputs and outputs unchanged (f32 `image`,
//! f32 scores and maps). Casts are inserted where a value crosses between the two; each value is
//! cast at most once per target type, and an f32 constant needed in f16 gets an f16 copy instead.

use dlvp_contract::graph::{Precision, META_PRECISION};
use std::collections::HashMap;

use super::{Attr, DType, Graph, Initializer, Node};
use crate::ops::F16Rule as Rule;

/// How the fp16 pass treats `op` (the operator table, [`crate::ops`]).
fn rule(op: &str) -> Rule {
    crate::ops::kind(op).f16
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F16)
}

fn f16_bytes(raw: &[u8]) -> Vec<u8> {
    raw.chunks_exact(4)
        .flat_map(|b| {
            half::f16::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).to_le_bytes()
        })
        .collect()
}

/// Rewrites `graph` in place as described in the module header.
pub fn convert(graph: &mut Graph) {
    let mut dtype: HashMap<String, DType> = HashMap::new();
    for w in &graph.inputs {
        dtype.insert(w.name.clone(), w.dtype);
    }
    let initializer_index: HashMap<String, usize> = graph
        .initializers
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    for t in &graph.initializers {
        dtype.insert(t.name.clone(), t.dtype);
    }
    let output_types: HashMap<String, DType> = graph
        .outputs
        .iter()
        .map(|w| (w.name.clone(), w.dtype))
        .collect();
    let mut casts: HashMap<(String, DType), String> = HashMap::new();
    let mut half_copies: Vec<Initializer> = Vec::new();
    let mut nodes: Vec<Node> = Vec::with_capacity(graph.nodes.len());

    let old_nodes = std::mem::take(&mut graph.nodes);
    for mut node in old_nodes {
        let first_float = node
            .inputs
            .first()
            .and_then(|i| dtype.get(i))
            .copied()
            .filter(|d| is_float(*d));
        let graph_output =
            node.op == "Identity" && node.outputs.iter().any(|o| output_types.contains_key(o));
        let want = |slot: usize| -> Option<DType> {
            if graph_output {
                return node
                    .outputs
                    .first()
                    .and_then(|o| output_types.get(o))
                    .copied();
            }
            match rule(node.op) {
                Rule::Half => Some(DType::F16),
                Rule::Single => Some(DType::F32),
                Rule::Follow if node.op == "Concat" || slot == 0 => first_float,
                _ => None,
            }
        };
        let wanted: Vec<Option<DType>> = (0..node.inputs.len()).map(want).collect();
        for (slot, input) in node.inputs.iter_mut().enumerate() {
            let (Some(target), Some(&current)) = (wanted[slot], dtype.get(input.as_str())) else {
                continue;
            };
            if !is_float(current) || current == target {
                continue;
            }
            if let (Some(&i), DType::F16) = (initializer_index.get(input.as_str()), target) {
                let copy = format!("{input}/f16");
                if !dtype.contains_key(&copy) {
                    let t = &graph.initializers[i];
                    half_copies.push(Initializer {
                        name: copy.clone(),
                        dtype: DType::F16,
                        dims: t.dims.clone(),
                        raw: f16_bytes(&t.raw),
                    });
                    dtype.insert(copy.clone(), DType::F16);
                }
                *input = copy;
                continue;
            }
            let key = (input.clone(), target);
            let cast = casts.entry(key).or_insert_with(|| {
                let name = format!(
                    "{input}/to_{}",
                    if target == DType::F16 { "f16" } else { "f32" }
                );
                nodes.push(Node {
                    name: name.clone(),
                    op: "Cast",
                    inputs: vec![input.clone()],
                    outputs: vec![name.clone()],
                    output_dtypes: vec![target],
                    attrs: vec![("to", Attr::Int(if target == DType::F16 { 10 } else { 1 }))],
                });
                name
            });
            dtype.insert(cast.clone(), target);
            *input = cast.clone();
        }
        let produced = match rule(node.op) {
            _ if graph_output => node
                .outputs
                .first()
                .and_then(|o| output_types.get(o))
                .copied(),
            Rule::Half => Some(DType::F16),
            Rule::Single => Some(DType::F32),
            Rule::Follow => node
                .inputs
                .first()
                .and_then(|i| dtype.get(i))
                .copied()
                .filter(|d| is_float(*d)),
            Rule::Any => None,
        };
        for (out, d) in node.outputs.iter().zip(node.output_dtypes.iter_mut()) {
            if let (Some(p), true) = (produced, is_float(*d)) {
                *d = p;
            }
            dtype.insert(out.clone(), *d);
        }
        nodes.push(node);
    }
    graph.nodes = nodes;
    graph.initializers.extend(half_copies);
    graph.drop_unused_initializers();
    graph
        .metadata
        .push((META_PRECISION.into(), Precision::Fp16.name().into()));
}
