//! `dlvp inspect MODEL.onnx [--json] [--target T] [--flops [--batch N]]`: opset, inputs and
//! outputs with shapes, metadata, op histogram, parameter count and bytes; a target's static
//! check; the multiply-adds of its contractions for one batch (`dlvp_runtime::cost`); for int8
//! graphs, which MatMuls run in int8 and which ops are kept in f32; for fp16 graphs, the f32
//! islands as trtexec's `--layerPrecisions` (both `dlvp_exporter::targets::precisions`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use dlvp_onnx_proto as pb;
use prost::Message;

use dlvp_contract::graph::META_INT8_WEIGHT_RANGE;
use dlvp_exporter::targets::precisions::{self, int8_summary, INT8_SCHEME};
use dlvp_exporter::targets::summary::GraphSummary;
use dlvp_exporter::targets::{self, Target};

#[derive(Args)]
pub struct InspectArgs {
    /// The ONNX graph to describe (any ONNX model; a `dlvp export` one also has its metadata).
    model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also check the graph against this target's parser: every node, attribute or dtype it
    /// would reject (node, op, reason); exit 1 if any.
    #[arg(long, value_parser = crate::cli::target_parser())]
    target: Option<Target>,
    /// Also count the FLOPs of the graph's contractions (MatMul, Gemm, Conv: 2 × multiply-adds)
    /// for one run at --batch, the image size taken from the graph's metadata.
    #[arg(long)]
    flops: bool,
    /// The batch --flops counts for.
    #[arg(long, default_value_t = 1, requires = "flops",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch: u32,
    /// Print only the f32 islands of an `--fp16` export as trtexec's `--layerPrecisions` value
    /// (`node:fp32,…`), to keep them in fp32 on a weakly typed TensorRT build
    /// (`--fp16 --precisionConstraints=obey --layerPrecisions=$(dlvp inspect M --trt-layer-precisions)`).
    #[arg(long, conflicts_with_all = ["json", "target", "flops"])]
    trt_layer_precisions: bool,
}

/// The contractions' cost of a DLVP graph, sized from its own metadata.
fn flops(
    bytes: &[u8],
    metadata: &BTreeMap<&str, &str>,
    batch: usize,
    path: &std::path::Path,
) -> anyhow::Result<dlvp_runtime::cost::GraphCost> {
    use dlvp_contract::graph::{InputKind, META_IMAGE_SIZE, META_INPUT};
    let size: usize = metadata
        .get(META_IMAGE_SIZE)
        .and_then(|v| v.parse().ok())
        .with_context(|| {
            format!(
                "{}: --flops needs the `{META_IMAGE_SIZE}` metadata of a dlvp export",
                path.display()
            )
        })?;
    let u8_input = metadata
        .get(META_INPUT)
        .is_some_and(|v| InputKind::from_name(v) == Some(InputKind::ImageU8));
    dlvp_runtime::cost::graph_cost(bytes, batch, size, u8_input)
        .with_context(|| format!("{}: counting FLOPs", path.display()))
}

/// A shape's dims as JSON numbers where they are numbers (`["B", 3, 224, 224]`), symbolic ones
/// (`B`) and unknown ones (`?`) left strings: what a JSON reader compares and computes with.
fn numeric_dims(shape: &mut serde_json::Value) {
    for dim in shape.as_array_mut().into_iter().flatten() {
        if let Some(n) = dim.as_str().and_then(|d| d.parse::<i64>().ok()) {
            *dim = n.into();
        }
    }
}

pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.model)
        .with_context(|| format!("{}: cannot read", args.model.display()))?;
    if dlvp_runtime::model_file::is_safetensors(&bytes) {
        let path = args.model.display().to_string();
        anyhow::bail!(
            "{path}: {}",
            dlvp_runtime::model_file::CHECKPOINT.replace("FILE", &path)
        );
    }
    let model = pb::ModelProto::decode(bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("{}: not an ONNX model: {e}", args.model.display()))?;
    let graph = model
        .graph
        .as_ref()
        .with_context(|| format!("{}: the model has no graph", args.model.display()))?;
    if args.trt_layer_precisions {
        let islands = precisions::f32_islands(graph).with_context(|| {
            format!(
                "{}: computes nothing in fp16 (not a `dlvp export --fp16` graph), so there are no fp32 islands to pin",
                args.model.display()
            )
        })?;
        println!("{}", precisions::layer_precisions(&islands));
        return Ok(ExitCode::SUCCESS);
    }
    let summary = GraphSummary::of(&model);
    let metadata: BTreeMap<&str, &str> = summary
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let weights = dlvp_runtime::int8_kernels::audit(graph);
    let violations = args
        .target
        .map(|t| (t.rules().name, targets::check(&model, t.rules())));
    let cost = if args.flops {
        Some(flops(&bytes, &metadata, args.batch as usize, &args.model)?)
    } else {
        None
    };
    let status = match &violations {
        Some((_, v)) if !v.is_empty() => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    };
    if args.json {
        let mut out = serde_json::json!({"model": args.model, "bytes": bytes.len()});
        if let (Some(out), serde_json::Value::Object(s)) =
            (out.as_object_mut(), serde_json::to_value(&summary)?)
        {
            out.extend(s);
        }
        for kind in ["inputs", "outputs"] {
            for tensor in out[kind].as_array_mut().into_iter().flatten() {
                numeric_dims(&mut tensor["shape"]);
            }
        }
        if let Some((int8, kept)) = int8_summary(graph) {
            out["int8"] = serde_json::json!({"int8_matmuls": int8, "kept_f32": kept,
                "scheme": INT8_SCHEME, "weight_range": metadata.get(META_INT8_WEIGHT_RANGE)});
            out["int8"]["weights"] = match &weights {
                Ok(Some(w)) => serde_json::json!({
                    "tensors": w.weights, "max_abs_q": w.max_abs_q,
                    "worst_pair_sum": w.worst_pair_sum, "pairs_over_16_bits": w.pairs_over,
                    "exact_without_vnni": w.exact_without_vnni(),
                    "first_over": w.first_over.as_ref().map(|p| serde_json::json!({
                        "weight": p.weight, "row": p.row, "column": p.column,
                        "values": [p.values.0, p.values.1]})),
                }),
                Ok(None) => serde_json::Value::Null,
                Err(e) => serde_json::json!({"error": e.to_string()}),
            };
        }
        if let Some((name, v)) = &violations {
            out["target"] =
                serde_json::json!({"name": name, "compatible": v.is_empty(), "violations": v});
        }
        if let Some(c) = &cost {
            out["flops"] = serde_json::json!({"batch": c.batch, "flops": c.flops(),
                "per_image": c.flops() / c.batch as u64, "fma_by_op": c.fma_by_op});
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(status);
    }
    println!(
        "{}: {} bytes, producer {}",
        args.model.display(),
        bytes.len(),
        summary.producer
    );
    println!(
        "opset: {}",
        summary
            .opset
            .iter()
            .map(|(d, v)| format!("{}{v}", if d.is_empty() { "" } else { d }))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (kind, list) in [("input ", &summary.inputs), ("output", &summary.outputs)] {
        for v in list {
            println!("{kind}  {} {} [{}]", v.name, v.dtype, v.shape.join(", "));
        }
    }
    println!(
        "nodes: {}, parameters: {} ({:.1} MB)",
        summary.nodes,
        summary.parameters,
        summary.parameter_bytes as f64 / 1e6
    );
    println!(
        "ops: {}",
        summary
            .ops
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some((int8, kept)) = int8_summary(graph) {
        println!(
            "int8: {int8} MatMuls in int8 (QDQ); kept in f32: {}",
            kept.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("int8 scheme: {INT8_SCHEME}");
        match &weights {
            Ok(Some(w)) => println!(
                "int8 weights: {} tensors, |q| <= {} (range {}), largest pair sum {}: {}",
                w.weights,
                w.max_abs_q,
                metadata
                    .get(META_INT8_WEIGHT_RANGE)
                    .copied()
                    .unwrap_or("not recorded: full"),
                w.worst_pair_sum,
                w.verdict()
            ),
            Ok(None) => {}
            Err(e) => println!("int8 weights: not audited ({e})"),
        }
    }
    for (k, v) in metadata {
        let first = v.lines().next().unwrap_or("");
        let more = if v.lines().count() > 1 {
            format!(" … ({} lines)", v.lines().count())
        } else {
            String::new()
        };
        println!("metadata {k}: {first}{more}");
    }
    if let Some(c) = &cost {
        println!(
            "flops: {:.3} GFLOP per image in contractions (batch {}: {:.3} GFLOP; multiply-adds by tract op: {})",
            c.flops() as f64 / c.batch as f64 / 1e9,
            c.batch,
            c.flops() as f64 / 1e9,
            c.fma_by_op
                .iter()
                .map(|(k, v)| format!("{k} {:.3} G", *v as f64 / 1e9))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some((name, v)) = &violations {
        if v.is_empty() {
            println!("target {name}: compatible");
        } else {
            for x in v {
                println!("target {name}: {}  {}  {}", x.node, x.op, x.reason);
            }
            eprintln!(
                "error: {}: {} construct(s) the {name} parser would reject",
                args.model.display(),
                v.len()
            );
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_dims_become_numbers_and_symbolic_ones_stay_names() {
        let mut shape = serde_json::json!(["B", "3", "224", "?", "0"]);
        numeric_dims(&mut shape);
        assert_eq!(shape, serde_json::json!(["B", 3, 224, "?", 0]));
    }
}
