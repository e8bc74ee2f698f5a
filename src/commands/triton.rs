//! A Triton Inference Server model repository for an exported graph (`dlvp export --triton-repo`):
//! `DIR/<name>/config.pbtxt` and `DIR/<name>/1/model.onnx`, run by Triton's ONNX Runtime backend
//! with dynamic batching and, on GPU instances, ONNX Runtime's TensorRT provider.
//!
//! The config states the graph contract (model-spec/README.md "Graph contract") in Triton's terms:
//! with `max_batch_size > 0` Triton prepends the batch dimension itself, so `dims` leave it out —
//! `image` [3, S, S] (or `image_u8` [S, S, 3]), `anomaly_map` [1, S, S], `topk_indices` [K]. The
//! graph's `anomaly_score` is [B], whose per-request shape is a scalar, which Triton cannot state
//! as `dims`; it is declared `dims: [1]` with `reshape { shape: [] }`, Triton's documented way.
//! The TensorRT optimisation profile spans batch 1 to max_batch_size, so dynamic batches never
//! trigger an engine rebuild.

use std::fmt::Write as _;

use dlvp_contract::graph::{self as contract, ElemType, InputKind, Precision, TensorDesc};
use dlvp_contract::Spec;

/// Where Triton runs the model's instances.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum InstanceKind {
    /// GPU instances; ONNX Runtime's TensorRT provider is configured as the accelerator.
    Gpu,
    /// CPU instances (no accelerator): for servers without a GPU, or trying the repository out.
    Cpu,
    /// CPU instances with ONNX Runtime's OpenVINO execution provider as the accelerator (Intel
    /// CPUs; Triton's x86 containers build their ONNX Runtime backend with it). The ONNX file is
    /// the same; OpenVINO reads it as it is.
    Openvino,
}

/// Everything `config.pbtxt` depends on.
pub struct TritonConfig<'a> {
    pub name: &'a str,
    pub spec: &'a Spec,
    pub input: InputKind,
    pub precision: Precision,
    pub max_batch: u32,
    pub instances: u32,
    pub kind: InstanceKind,
    /// Where the server keeps TensorRT engines and timing caches (a path on the server).
    pub trt_cache: &'a str,
    /// TensorRT builder workspace, bytes.
    pub workspace_bytes: u64,
    /// How long the dynamic batcher may hold a request to fill a batch, microseconds.
    pub queue_delay_us: u64,
}

/// Triton's model-name rules in practice: the name is a folder of the repository and part of
/// every request URL (`/v2/models/<name>/infer`), so keep it to letters, digits, `_`, `-`, `.`.
pub fn check_model_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("`{name}` cannot name a folder"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "`{name}` has `{c}`; use letters, digits, `_`, `-` and `.` only"
        ));
    }
    Ok(())
}

/// The default model name: the spec's name with anything outside Triton's safe set replaced by `_`.
pub fn default_model_name(spec: &Spec) -> String {
    let name: String = spec
        .name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if check_model_name(&name).is_ok() {
        name
    } else {
        "dlvp".to_string()
    }
}

/// A protobuf text-format string literal.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn dims(d: &[usize]) -> String {
    let list: Vec<String> = d.iter().map(|v| v.to_string()).collect();
    format!("[ {} ]", list.join(", "))
}

/// One `input`/`output` entry: Triton prepends the batch, so `dims` leave it out; the [B] score
/// is per request a scalar, which `dims` cannot state: `dims: [1]` reshaped to `[]`.
fn entry(t: &TensorDesc) -> String {
    let dtype = match t.elem {
        ElemType::F32 => "TYPE_FP32",
        ElemType::U8 => "TYPE_UINT8",
        ElemType::I64 => "TYPE_INT64",
    };
    let per_item = t.per_item_dims();
    let (d, reshape) = if per_item.is_empty() {
        (vec![1], "\n    reshape { shape: [ ] }")
    } else {
        (per_item, "")
    };
    format!(
        "  {{\n    name: {}\n    data_type: {dtype}\n    dims: {}{reshape}\n  }}",
        quoted(t.name),
        dims(&d)
    )
}

/// `config.pbtxt` for the repository (protobuf text format of Triton's `ModelConfig`).
pub fn config_pbtxt(c: &TritonConfig) -> String {
    let input = c.input.desc(c.spec.image_size);
    let input_shape: Vec<String> = input
        .per_item_dims()
        .iter()
        .map(|d| d.to_string())
        .collect();
    let input_shape = input_shape.join("x");
    let mut s = String::new();
    let w = &mut s;
    // Comments are part of protobuf's text format; Triton reads past them.
    let _ = writeln!(
        w,
        "# Written by `dlvp export --triton-repo` for spec {:?}.",
        c.spec.name
    );
    let _ = writeln!(
        w,
        "# Inputs are preprocessed by the client: see 1/model.onnx.json (\"preprocess\")."
    );
    let _ = writeln!(w, "name: {}", quoted(c.name));
    let _ = writeln!(w, "backend: \"onnxruntime\"");
    let _ = writeln!(w, "default_model_filename: \"model.onnx\"");
    let _ = writeln!(w, "max_batch_size: {}", c.max_batch);
    let sections = [
        ("input", vec![input.clone()]),
        ("output", contract::outputs(c.spec).to_vec()),
    ];
    for (section, tensors) in sections {
        let entries: Vec<String> = tensors.iter().map(entry).collect();
        let _ = writeln!(w, "{section} [\n{}\n]", entries.join(",\n"));
    }
    let _ = writeln!(w, "dynamic_batching {{");
    let _ = writeln!(w, "  max_queue_delay_microseconds: {}", c.queue_delay_us);
    let _ = writeln!(w, "}}");
    let kind = match c.kind {
        InstanceKind::Gpu => "KIND_GPU",
        InstanceKind::Cpu | InstanceKind::Openvino => "KIND_CPU",
    };
    let _ = writeln!(w, "instance_group [");
    let _ = writeln!(w, "  {{");
    let _ = writeln!(w, "    count: {}", c.instances);
    let _ = writeln!(w, "    kind: {kind}");
    let _ = writeln!(w, "  }}");
    let _ = writeln!(w, "]");
    if c.kind == InstanceKind::Gpu {
        let profile = |batch: u32| quoted(&format!("{}:{batch}x{input_shape}", input.name));
        let params: Vec<(&str, String)> = vec![
            // An fp16 export already computes in fp16; TensorRT must be allowed fp16 kernels to
            // run it. For an fp32 export TensorRT stays fp32, the precision it was checked at. An
            // int8 export carries its own Q/DQ scales (explicit quantization): INT8 lets TensorRT
            // run those layers in int8 and needs no calibration table.
            (
                "precision_mode",
                quoted(match c.precision {
                    Precision::Fp16 => "FP16",
                    Precision::Fp32 => "FP32",
                    Precision::Int8 => "INT8",
                }),
            ),
            (
                "max_workspace_size_bytes",
                quoted(&c.workspace_bytes.to_string()),
            ),
            ("trt_engine_cache_enable", quoted("1")),
            ("trt_engine_cache_path", quoted(c.trt_cache)),
            ("trt_timing_cache_enable", quoted("1")),
            ("trt_timing_cache_path", quoted(c.trt_cache)),
            ("trt_profile_min_shapes", profile(1)),
            ("trt_profile_opt_shapes", profile(c.max_batch)),
            ("trt_profile_max_shapes", profile(c.max_batch)),
        ];
        let _ = writeln!(w, "optimization {{");
        let _ = writeln!(w, "  execution_accelerators {{");
        let _ = writeln!(w, "    gpu_execution_accelerator [");
        let _ = writeln!(w, "      {{");
        let _ = writeln!(w, "        name: \"tensorrt\"");
        for (key, value) in params {
            let _ = writeln!(
                w,
                "        parameters {{ key: {} value: {value} }}",
                quoted(key)
            );
        }
        let _ = writeln!(w, "      }}");
        let _ = writeln!(w, "    ]");
        let _ = writeln!(w, "  }}");
        let _ = writeln!(w, "}}");
    }
    if c.kind == InstanceKind::Openvino {
        let _ = writeln!(w, "optimization {{");
        let _ = writeln!(w, "  execution_accelerators {{");
        let _ = writeln!(w, "    cpu_execution_accelerator [");
        let _ = writeln!(w, "      {{");
        let _ = writeln!(w, "        name: \"openvino\"");
        let _ = writeln!(w, "      }}");
        let _ = writeln!(w, "    ]");
        let _ = writeln!(w, "  }}");
        let _ = writeln!(w, "}}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("dlvp-demo", Ok(()))]
    #[case("a.b_c-1", Ok(()))]
    #[case("", Err(()))]
    #[case("..", Err(()))]
    #[case("a/b", Err(()))]
    #[case("a b", Err(()))]
    #[case("x\"y", Err(()))]
    fn model_names(#[case] name: &str, #[case] ok: Result<(), ()>) {
        assert_eq!(check_model_name(name).map_err(|_| ()), ok, "{name}");
    }

    #[test]
    fn default_name_is_made_safe() {
        let mut spec = Spec {
            name: "My model/v2 (fabric)".into(),
            ..Default::default()
        };
        assert_eq!(default_model_name(&spec), "My_model_v2__fabric_");
        spec.name = "..".into();
        assert_eq!(default_model_name(&spec), "dlvp");
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    fn config(kind: InstanceKind, embed: bool) -> String {
        let spec = Spec::default();
        config_pbtxt(&TritonConfig {
            name: "m",
            spec: &spec,
            input: if embed {
                InputKind::ImageU8
            } else {
                InputKind::Image
            },
            precision: Precision::Fp32,
            max_batch: 16,
            instances: 2,
            kind,
            trt_cache: "/tmp/c",
            workspace_bytes: 1 << 30,
            queue_delay_us: 100,
        })
    }

    #[test]
    fn cpu_instances_get_no_gpu_accelerator() {
        let cpu = config(InstanceKind::Cpu, false);
        assert!(
            cpu.contains("kind: KIND_CPU") && !cpu.contains("tensorrt"),
            "{cpu}"
        );
        let gpu = config(InstanceKind::Gpu, false);
        assert!(
            gpu.contains("kind: KIND_GPU") && gpu.contains("name: \"tensorrt\""),
            "{gpu}"
        );
    }

    #[test]
    fn profile_spans_the_batch_range_of_the_real_input() {
        let s = Spec::default().image_size;
        let gpu = config(InstanceKind::Gpu, true);
        assert!(gpu.contains(&format!("\"image_u8:1x{s}x{s}x3\"")), "{gpu}");
        assert!(gpu.contains(&format!("\"image_u8:16x{s}x{s}x3\"")), "{gpu}");
        let gpu = config(InstanceKind::Gpu, false);
        assert!(gpu.contains(&format!("\"image:16x3x{s}x{s}\"")), "{gpu}");
    }
}
