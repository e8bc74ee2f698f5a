//! A typed ONNX graph under construction, knowing nothing of protobuf (`crate::onnx` writes it).
//!
//! Every op helper (in [`ops`]) infers the output's dtype and shape as the node is added and
//! fails with a [`GraphError`] naming the scope that built the bad node
//! (`visual/pass2/blocks.7/attn`), the op and what did not fit. Shapes are static except for
//! one symbolic batch dimension. Identical constants are stored once. Node and value names
//! derive from scopes and per-scope counters only, so the same inputs give the same graph.

pub mod decompose;
pub mod fp16;
pub mod int8;
pub mod ops;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Element types the graph uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    I64,
    U8,
    I8,
}

/// One dimension: a fixed size or the dynamic batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    Fixed(usize),
    Batch,
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Batch => f.write_str("B"),
        }
    }
}

/// Shape written `[B, 3, 56, 56]` in messages.
pub fn shape_str(shape: &[Dim]) -> String {
    format!(
        "[{}]",
        shape
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A value in the graph: its name, dtype and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl Wire {
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Axis `axis` (negative counts from the end); `None` outside the shape.
    pub fn dim(&self, axis: isize) -> Option<Dim> {
        let axis = if axis < 0 {
            axis.checked_add(self.shape.len() as isize)?
        } else {
            axis
        };
        usize::try_from(axis)
            .ok()
            .and_then(|a| self.shape.get(a).copied())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: &'static str,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// The element type of each output, as inferred when the node was added.
    pub output_dtypes: Vec<DType>,
    pub attrs: Vec<(&'static str, Attr)>,
}

/// Constant data, stored little-endian as the ONNX raw_data field wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Initializer {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<usize>,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{scope}: {op}: {message}")]
pub struct GraphError {
    pub scope: String,
    pub op: String,
    pub message: String,
}

/// A Linear layer's MatMul as it was built: what the int8 pass ([`int8`]) may quantize.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearUse {
    /// The MatMul node (and its output).
    pub matmul: String,
    /// Its input 0, the activation.
    pub activation: Wire,
    /// Its input 1, the weight initializer [in, out].
    pub weight: String,
    /// The scope that built it (`visual/pass2/blocks.7/mlp`).
    pub scope: String,
}

/// The graph being built.
#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// Every Linear's MatMul, in build order.
    pub linears: Vec<LinearUse>,
    pub initializers: Vec<Initializer>,
    pub inputs: Vec<Wire>,
    pub outputs: Vec<Wire>,
    /// `metadata_props` of the model, in insertion order.
    pub metadata: Vec<(String, String)>,
    scope: Vec<String>,
    counters: BTreeMap<String, usize>,
    /// (dtype, dims, hash of the bytes) → indices into `initializers`; the bytes are compared on
    /// a hit, so a hash collision can never merge two different constants.
    constants: HashMap<(DType, Vec<usize>, u64), Vec<usize>>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// The current scope path, `visual/pass2/blocks.7`.
    pub fn scope_path(&self) -> String {
        if self.scope.is_empty() {
            "graph".to_string()
        } else {
            self.scope.join("/")
        }
    }

    /// Runs `build` inside the sub-scope `name`.
    pub fn scoped<T>(&mut self, name: impl fmt::Display, build: impl FnOnce(&mut Graph) -> T) -> T {
        self.scope.push(name.to_string());
        let out = build(self);
        self.scope.pop();
        out
    }

    /// A fresh name `scope/base` (`scope/base_1`, ... on repeats).
    pub fn fresh_name(&mut self, base: &str) -> String {
        let stem = if self.scope.is_empty() {
            base.to_string()
        } else {
            format!("{}/{base}", self.scope.join("/"))
        };
        let count = self.counters.entry(stem.clone()).or_insert(0);
        *count += 1;
        if *count == 1 {
            stem
        } else {
            format!("{stem}_{}", *count - 1)
        }
    }

    pub fn error(&self, op: &str, message: impl Into<String>) -> GraphError {
        GraphError {
            scope: self.scope_path(),
            op: op.to_string(),
            message: message.into(),
        }
    }

    pub fn input(&mut self, name: &str, dtype: DType, shape: Vec<Dim>) -> Wire {
        let wire = Wire {
            name: name.to_string(),
            dtype,
            shape,
        };
        self.inputs.push(wire.clone());
        wire
    }

    /// Marks `wire` as a graph output named `name` (an Identity renames it when needed).
    pub fn output(&mut self, name: &str, wire: &Wire) -> Wire {
        let out = if wire.name == name {
            wire.clone()
        } else {
            let out = Wire {
                name: name.to_string(),
                dtype: wire.dtype,
                shape: wire.shape.clone(),
            };
            self.nodes.push(Node {
                name: format!("{name}/identity"),
                op: "Identity",
                inputs: vec![wire.name.clone()],
                outputs: vec![name.to_string()],
                output_dtypes: vec![wire.dtype],
                attrs: vec![],
            });
            out
        };
        self.outputs.push(out.clone());
        out
    }

    /// A constant; identical (dtype, shape, bytes) constants share one initializer.
    pub fn constant_raw(&mut self, base: &str, dtype: DType, dims: &[usize], raw: Vec<u8>) -> Wire {
        let shape = dims.iter().map(|&d| Dim::Fixed(d)).collect();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&raw, &mut hasher);
        let key = (dtype, dims.to_vec(), std::hash::Hasher::finish(&hasher));
        if let Some(found) = self
            .constants
            .get(&key)
            .and_then(|ids| ids.iter().find(|&&i| self.initializers[i].raw == raw))
        {
            return Wire {
                name: self.initializers[*found].name.clone(),
                dtype,
                shape,
            };
        }
        let name = self.fresh_name(base);
        self.constants
            .entry(key)
            .or_default()
            .push(self.initializers.len());
        self.initializers.push(Initializer {
            name: name.clone(),
            dtype,
            dims: dims.to_vec(),
            raw,
        });
        Wire { name, dtype, shape }
    }

    pub fn constant_f32(&mut self, base: &str, dims: &[usize], values: &[f32]) -> Wire {
        debug_assert_eq!(dims.iter().product::<usize>(), values.len());
        self.constant_raw(
            base,
            DType::F32,
            dims,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    pub fn constant_i64(&mut self, base: &str, dims: &[usize], values: &[i64]) -> Wire {
        debug_assert_eq!(dims.iter().product::<usize>(), values.len());
        self.constant_raw(
            base,
            DType::I64,
            dims,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    /// Adds a node with outputs of the given types; returns the output wires.
    pub fn node(
        &mut self,
        op: &'static str,
        inputs: &[&Wire],
        attrs: Vec<(&'static str, Attr)>,
        outputs: Vec<(DType, Vec<Dim>)>,
    ) -> Vec<Wire> {
        let name = self.fresh_name(&op.to_lowercase());
        let wires: Vec<Wire> = outputs
            .into_iter()
            .enumerate()
            .map(|(i, (dtype, shape))| Wire {
                name: if i == 0 {
                    name.clone()
                } else {
                    format!("{name}:{i}")
                },
                dtype,
                shape,
            })
            .collect();
        self.nodes.push(Node {
            name: name.clone(),
            op,
            inputs: inputs.iter().map(|w| w.name.clone()).collect(),
            outputs: wires.iter().map(|w| w.name.clone()).collect(),
            output_dtypes: wires.iter().map(|w| w.dtype).collect(),
            attrs,
        });
        wires
    }

    /// Removes the initializers no node reads any more (after a rewrite replaced them).
    pub fn drop_unused_initializers(&mut self) {
        let used: std::collections::HashSet<&String> =
            self.nodes.iter().flat_map(|n| n.inputs.iter()).collect();
        let keep: Vec<bool> = self
            .initializers
            .iter()
            .map(|t| used.contains(&t.name))
            .collect();
        let mut keep = keep.into_iter();
        self.initializers.retain(|_| keep.next().unwrap_or(true));
    }

    /// Bytes of constant data.
    pub fn initializer_bytes(&self) -> usize {
        self.initializers.iter().map(|i| i.raw.len()).sum()
    }
}
