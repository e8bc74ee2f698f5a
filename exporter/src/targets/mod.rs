//! Export targets and the static compatibility check behind `dlvp inspect --target`: which
//! nodes, attributes or dtypes of an ONNX graph a target's parser would reject, each with the
//! node's name, its op and the reason. The limits themselves are data, one table per target, in
//! [`rules`] (each TensorRT release's operators as the base release's list plus its additions).
//! [`precisions`] reads the same graphs for where they compute in which precision, [`summary`]
//! for their structure at a glance (`dlvp inspect`).

pub mod precisions;
mod rules;
pub mod summary;

use std::collections::HashSet;

use dlvp_onnx_proto as pb;

pub use rules::Rules;

/// The parser a graph is exported for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Target {
    /// ONNX Runtime, tract, anything that reads standard opset-17 ONNX.
    #[default]
    Generic,
    /// TensorRT 8.5 (JetPack 5.1).
    Tensorrt85,
    /// TensorRT 8.6 (JetPack 6.0 DP; x86 TensorRT 8.6).
    Tensorrt86,
    /// TensorRT 10 (JetPack 6.1 / 6.2 ship 10.3).
    Tensorrt10,
}

impl Target {
    pub const ALL: [Target; 4] = [
        Target::Generic,
        Target::Tensorrt85,
        Target::Tensorrt86,
        Target::Tensorrt10,
    ];

    pub fn rules(self) -> &'static Rules {
        match self {
            Target::Generic => &rules::GENERIC,
            Target::Tensorrt85 => &rules::TENSORRT_8_5,
            Target::Tensorrt86 => &rules::TENSORRT_8_6,
            Target::Tensorrt10 => &rules::TENSORRT_10,
        }
    }

    /// `generic`, `tensorrt-8.5`, ...: the name on the command line and in `dlvp.target`.
    pub fn name(self) -> &'static str {
        self.rules().name
    }

    /// One line on what the target is, for `--help`.
    pub fn about(self) -> &'static str {
        match self {
            Target::Generic => "ONNX Runtime, tract, anything that reads standard opset-17 ONNX",
            Target::Tensorrt85 => "TensorRT 8.5 (JetPack 5.1)",
            Target::Tensorrt86 => "TensorRT 8.6 (JetPack 6.0 DP; x86 TensorRT 8.6)",
            Target::Tensorrt10 => "TensorRT 10 (JetPack 6.1 / 6.2 ship 10.3)",
        }
    }
}

dlvp_contract::named_enum!(Target, "target");

/// One thing the target's parser would reject.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Violation {
    /// The node's name (or the graph input/output's, or "model").
    pub node: String,
    pub op: String,
    pub reason: String,
}

fn data_type_name(t: i32) -> String {
    pb::tensor_proto::DataType::try_from(t)
        .map(|d| format!("{d:?}").to_uppercase())
        .unwrap_or_else(|_| t.to_string())
}

/// Every violation of `rules` in `model`, in graph order.
pub fn check(model: &pb::ModelProto, rules: &Rules) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut flag = |node: &str, op: &str, reason: String| {
        out.push(Violation {
            node: node.to_string(),
            op: op.to_string(),
            reason,
        })
    };
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(0);
    let (lo, hi) = rules.opsets;
    if !(lo..=hi).contains(&opset) {
        flag(
            "model",
            "opset",
            format!("opset {opset}; {} parses opsets {lo} to {hi}", rules.name),
        );
    }
    let Some(graph) = model.graph.as_ref() else {
        flag("model", "graph", "the model has no graph".into());
        return out;
    };
    // Values the parser sees as constants: initializers and Constant outputs.
    let mut constants: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    for node in &graph.node {
        if node.op_type == "Constant" {
            constants.extend(node.output.iter().map(|s| s.as_str()));
        }
    }
    let initializer = |name: &str| graph.initializer.iter().find(|t| t.name == name);
    if let Some(types) = rules.io_types {
        let io = graph
            .input
            .iter()
            .filter(|v| !constants.contains(v.name.as_str()))
            .map(|v| (v, "input"))
            .chain(graph.output.iter().map(|v| (v, "output")));
        for (value, kind) in io {
            if let Some(pb::type_proto::Value::TensorType(t)) =
                value.r#type.as_ref().and_then(|t| t.value.as_ref())
            {
                let name = data_type_name(t.elem_type);
                if !types.contains(&name.as_str()) {
                    flag(
                        &value.name,
                        kind,
                        format!(
                            "{kind} of type {name}; {} takes {}",
                            rules.name,
                            types.join(", ")
                        ),
                    );
                }
            }
        }
    }
    for node in &graph.node {
        let op = node.op_type.as_str();
        let name = if node.name.is_empty() {
            node.output.first().map(|s| s.as_str()).unwrap_or("?")
        } else {
            node.name.as_str()
        };
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            flag(name, op, format!("custom domain `{}`", node.domain));
            continue;
        }
        if !rules.imports(op) {
            flag(name, op, format!("{} has no importer for {op}", rules.name));
            continue;
        }
        for &(rule_op, index, what) in rules.constant_inputs {
            if rule_op == op {
                if let Some(input) = node.input.get(index).filter(|i| !i.is_empty()) {
                    if !constants.contains(input.as_str()) {
                        flag(
                            name,
                            op,
                            format!("input {index} ({what}) `{input}` is computed at run time; {} needs an initializer", rules.name),
                        );
                    }
                }
            }
        }
        if op == "TopK" {
            if let (Some(limit), Some(k)) = (rules.topk_k_below, node.input.get(1)) {
                let value = initializer(k).and_then(|t| {
                    t.int64_data.first().copied().or_else(|| {
                        t.raw_data
                            .get(..8)
                            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                    })
                });
                if let Some(k) = value.filter(|k| *k >= limit) {
                    flag(
                        name,
                        op,
                        format!("K = {k}; {} needs K < {limit}", rules.name),
                    );
                }
            }
        }
        if let (Some(qdq), "QuantizeLinear" | "DequantizeLinear") = (&rules.qdq, op) {
            // The zero point carries the quantized type; without one, QuantizeLinear gives UINT8.
            match node
                .input
                .get(2)
                .filter(|i| !i.is_empty())
                .map(|z| (z, initializer(z)))
            {
                None => flag(
                    name,
                    op,
                    format!(
                        "no zero point (UINT8); {} quantizes to {}",
                        rules.name,
                        qdq.types.join(", ")
                    ),
                ),
                Some((z, None)) => flag(
                    name,
                    op,
                    format!(
                        "zero point `{z}` is computed at run time; {} needs an initializer",
                        rules.name
                    ),
                ),
                Some((z, Some(t))) => {
                    let dtype = data_type_name(t.data_type);
                    if !qdq.types.contains(&dtype.as_str()) {
                        flag(
                            name,
                            op,
                            format!(
                                "quantized type {dtype}; {} takes {}",
                                rules.name,
                                qdq.types.join(", ")
                            ),
                        );
                    }
                    let zero =
                        t.raw_data.iter().all(|&b| b == 0) && t.int32_data.iter().all(|&v| v == 0);
                    if qdq.zero_points_zero && !zero {
                        flag(
                            name,
                            op,
                            format!(
                                "zero point `{z}` is not zero; {} quantizes symmetrically",
                                rules.name
                            ),
                        );
                    }
                }
            }
        }
        if op == "Resize" {
            if let Some(modes) = rules.resize_modes {
                let mode = node
                    .attribute
                    .iter()
                    .find(|a| a.name == "mode")
                    .map(|a| String::from_utf8_lossy(&a.s).into_owned())
                    .unwrap_or_else(|| "nearest".into());
                if !modes.contains(&mode.as_str()) {
                    flag(
                        name,
                        op,
                        format!(
                            "mode `{mode}`; {} resizes with {}",
                            rules.name,
                            modes.join(", ")
                        ),
                    );
                }
            }
        }
    }
    out
}
