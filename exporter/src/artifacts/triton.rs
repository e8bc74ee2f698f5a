//! A Triton Inference Server model repository for an exported graph (`dlvp export --triton-repo`):
//! `DIR/<name>/config.pbtxt` and `DIR/<name>/1/model.onnx`, run by Triton's ONNX Runtime backend
//! with dynamic batching and, on GPU instances, ONNX Runtime's TensorRT provider.
//!
//! The config states the graph contract (model-spec/README.md "Graph contract") in Triton's terms,
//! as [`dlvp_contract::triton`] gives them (`dlvp serve` answers with the same): per-request dims
//! after the batch, the [B] score declared `dims: [1]` with `reshape { shape: [] }`.
//! The TensorRT optimisation profile spans batch 1 to max_batch_size, so dynamic batches never
//! trigger an engine rebuild.
//!
//! Every TensorRT key written is one the ONNX Runtime backend parses
//! (triton-inference-server/onnxruntime_backend, `src/onnxruntime.cc`, which refuses any other
//! with "unknown parameter ... for TensorRT Execution Accelerator"); all but `precision_mode`,
//! `max_workspace_size_bytes` and `trt_engine_cache_*` arrived in its release branch r24.04
//! (commit 72189f9, "Enable more trt options"), so the repository needs Triton 24.04 or later
//! (docs/triton.md says what to delete for an older one).

use std::fmt::Write as _;

use dlvp_contract::graph::{self as contract, InputKind, Precision, TensorDesc};
use dlvp_contract::triton::{config_data_type, TritonTensor};
use dlvp_contract::Spec;

/// Where Triton runs the model's instances.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
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

impl InstanceKind {
    pub const ALL: [InstanceKind; 3] =
        [InstanceKind::Gpu, InstanceKind::Cpu, InstanceKind::Openvino];

    /// `gpu`, `cpu`, `openvino`.
    pub fn name(self) -> &'static str {
        match self {
            InstanceKind::Gpu => "gpu",
            InstanceKind::Cpu => "cpu",
            InstanceKind::Openvino => "openvino",
        }
    }

    /// One line on what the kind configures.
    pub fn about(self) -> &'static str {
        match self {
            InstanceKind::Gpu => {
                "GPU instances, ONNX Runtime's TensorRT provider as the accelerator"
            }
            InstanceKind::Cpu => {
                "CPU instances, no accelerator (servers without a GPU, trying it out)"
            }
            InstanceKind::Openvino => {
                "CPU instances, ONNX Runtime's OpenVINO provider as the accelerator (Intel CPUs)"
            }
        }
    }
}

dlvp_contract::named_enum!(InstanceKind, "Triton instance kind");

/// A preferred batch size Triton would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreferredBatchError {
    #[error("0 is no batch size; give sizes from 1 to the largest batch")]
    Zero,
    /// Triton refuses a preferred size above `max_batch_size` ("dynamic batching preferred
    /// size must be <= max batch size").
    #[error("{size} is larger than the largest batch {max_batch} (Triton refuses a preferred batch size above max_batch_size)")]
    AboveMax { size: u32, max_batch: u32 },
    #[error("sizes must be ascending without repeats, got {previous} then {size}")]
    NotAscending { previous: u32, size: u32 },
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
    /// `dynamic_batching.preferred_batch_size` (ascending, each at most `max_batch`; checked by
    /// [`check_preferred_batch`]); empty: none, the batcher forms the largest batch it can.
    pub preferred_batch: &'a [u32],
}

/// Preferred batch sizes against the largest batch: Triton refuses a preferred size above
/// `max_batch_size` or below 1; an ascending list without repeats is what the batcher reads most
/// easily and what we document.
pub fn check_preferred_batch(sizes: &[u32], max_batch: u32) -> Result<(), PreferredBatchError> {
    for (i, &size) in sizes.iter().enumerate() {
        if size == 0 {
            return Err(PreferredBatchError::Zero);
        }
        if size > max_batch {
            return Err(PreferredBatchError::AboveMax { size, max_batch });
        }
        if i > 0 && size <= sizes[i - 1] {
            return Err(PreferredBatchError::NotAscending {
                previous: sizes[i - 1],
                size,
            });
        }
    }
    Ok(())
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

/// One `input`/`output` entry in Triton's terms ([`TritonTensor`]).
fn entry(t: &TensorDesc) -> String {
    let t = TritonTensor::from_desc(t);
    let reshape = if t.scalar_per_item {
        "\n    reshape { shape: [ ] }"
    } else {
        ""
    };
    format!(
        "  {{\n    name: {}\n    data_type: {}\n    dims: {}{reshape}\n  }}",
        quoted(t.name),
        config_data_type(t.elem),
        dims(&t.dims)
    )
}

/// The start of each model-level parameter line [`with_model_parameters`] writes.
const PARAMETER_LINE: &str = "parameters { key: ";

/// A `config.pbtxt` (`config`) with model-level `parameters` (`ModelConfig.parameters`, string
/// values) for `params`: each key's earlier line, if this function wrote one, is replaced; other
/// lines stay as they are. `dlvp threshold --triton-repo` states the graph's decision thresholds
/// this way (Triton's ONNX Runtime backend reads only the parameter keys it knows; clients read
/// them all with the model configuration).
pub fn with_model_parameters(config: &str, params: &[(&str, String)]) -> String {
    let replaced = |line: &str| {
        params
            .iter()
            .any(|(key, _)| line.starts_with(&format!("{PARAMETER_LINE}{} ", quoted(key))))
    };
    let mut out: String = config
        .lines()
        .filter(|line| !replaced(line))
        .map(|line| format!("{line}\n"))
        .collect();
    for (key, value) in params {
        let _ = writeln!(
            out,
            "{PARAMETER_LINE}{} value {{ string_value: {} }} }}",
            quoted(key),
            quoted(value)
        );
    }
    out
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
    if !c.preferred_batch.is_empty() {
        let sizes: Vec<usize> = c.preferred_batch.iter().map(|&b| b as usize).collect();
        let _ = writeln!(w, "  preferred_batch_size: {}", dims(&sizes));
    }
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
        // TensorRT tunes its kernels for the profile's `opt` shape: the batch the batcher is told
        // to prefer most, else the largest it forms.
        let opt_batch = c.preferred_batch.last().copied().unwrap_or(c.max_batch);
        let mut params: Vec<(&str, String)> = vec![
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
            ("trt_profile_opt_shapes", profile(opt_batch)),
            ("trt_profile_max_shapes", profile(c.max_batch)),
            // Each instance (count per GPU, times the GPUs) is its own ONNX Runtime session that
            // builds or loads the engine in the shared cache folder when it is created, and Triton
            // creates them in parallel. ONNX Runtime's provider checks the cache, builds and
            // writes under one process-wide lock in the releases read for this (so the first
            // builds, the others load its engine); this key asks for the same on every release
            // that has it, instead of N concurrent builds racing for the same files.
            ("trt_force_sequential_engine_build", quoted("1")),
        ];
        if c.precision == Precision::Fp16 {
            // Under FP16 the provider keeps an elementwise POW layer and the REDUCE right after
            // it in fp32: the variance of a LayerNorm written with primitives (the tensorrt-8.5
            // target's decomposition squares with `Pow` for exactly this). A native
            // LayerNormalization (other targets) is not that pattern; docs/triton.md says how
            // its f32 fares.
            params.push(("trt_layer_norm_fp32_fallback", quoted("1")));
        }
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
    if c.kind == InstanceKind::Gpu {
        // Warm-up requests run on every instance at load, before the model is reported ready:
        // the engine and the device memory for the largest batch exist before the first camera's
        // request. With the explicit profile the engine is built (or loaded from the cache) when
        // the session is created; on a backend without the profile keys these two batches make
        // the provider build its engine for the whole 1..max range here instead of on requests.
        let dtype = config_data_type(input.elem);
        let mut batches = vec![1];
        if c.max_batch > 1 {
            batches.push(c.max_batch);
        }
        let samples: Vec<String> = batches
            .iter()
            .map(|batch| {
                format!(
                    "  {{\n    name: \"zeros_batch_{batch}\"\n    batch_size: {batch}\n    inputs {{\n      key: {}\n      value {{\n        data_type: {dtype}\n        dims: {}\n        zero_data: true\n      }}\n    }}\n  }}",
                    quoted(input.name),
                    dims(&input.per_item_dims())
                )
            })
            .collect();
        let _ = writeln!(w, "model_warmup [\n{}\n]", samples.join(",\n"));
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
    fn model_parameters_are_appended_once_and_replaced_on_the_next_call() {
        let config = "name: \"m\"\nmax_batch_size: 8\n";
        let first = with_model_parameters(
            config,
            &[
                ("dlvp.threshold.image", "0.5".into()),
                ("other", "x".into()),
            ],
        );
        assert_eq!(
            first,
            "name: \"m\"\nmax_batch_size: 8\n\
             parameters { key: \"dlvp.threshold.image\" value { string_value: \"0.5\" } }\n\
             parameters { key: \"other\" value { string_value: \"x\" } }\n"
        );
        let second = with_model_parameters(&first, &[("dlvp.threshold.image", "0.7".into())]);
        assert_eq!(second.matches("dlvp.threshold.image").count(), 1);
        assert!(second.contains("string_value: \"0.7\""));
        assert!(second.contains("key: \"other\""), "other keys stay");
        assert!(second.starts_with(config));
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

    fn config_with(
        kind: InstanceKind,
        embed: bool,
        precision: Precision,
        preferred_batch: &[u32],
    ) -> String {
        let spec = Spec::default();
        config_pbtxt(&TritonConfig {
            name: "m",
            spec: &spec,
            input: if embed {
                InputKind::ImageU8
            } else {
                InputKind::Image
            },
            precision,
            max_batch: 16,
            instances: 2,
            kind,
            trt_cache: "/tmp/c",
            workspace_bytes: 1 << 30,
            queue_delay_us: 100,
            preferred_batch,
        })
    }

    fn config(kind: InstanceKind, embed: bool) -> String {
        config_with(kind, embed, Precision::Fp32, &[])
    }

    /// The TensorRT accelerator's `parameters` keys, in order.
    fn trt_keys(config: &str) -> Vec<&str> {
        config
            .lines()
            .filter_map(|l| l.trim().strip_prefix("parameters { key: \""))
            .map(|rest| rest.split('"').next().unwrap())
            .collect()
    }

    /// Every key triton-inference-server/onnxruntime_backend's `src/onnxruntime.cc` parses for
    /// the "tensorrt" accelerator: the same 32 on its release branches r24.04 to r26.06 (any
    /// other key fails the model's load with "unknown parameter"; before r24.04 only the first
    /// two and `trt_engine_cache_*` and `int8_*` were known).
    const BACKEND_TRT_KEYS: &[&str] = &[
        "precision_mode",
        "max_workspace_size_bytes",
        "trt_max_partition_iterations",
        "trt_min_subgraph_size",
        "int8_calibration_table_name",
        "int8_use_native_calibration_table",
        "trt_dla_enable",
        "trt_dla_core",
        "trt_engine_cache_enable",
        "trt_engine_cache_path",
        "trt_engine_cache_prefix",
        "trt_dump_subgraphs",
        "trt_force_sequential_engine_build",
        "trt_context_memory_sharing_enable",
        "trt_layer_norm_fp32_fallback",
        "trt_timing_cache_enable",
        "trt_timing_cache_path",
        "trt_force_timing_cache",
        "trt_detailed_build_log",
        "trt_build_heuristics_enable",
        "trt_sparsity_enable",
        "trt_builder_optimization_level",
        "trt_auxiliary_streams",
        "trt_tactic_sources",
        "trt_extra_plugin_lib_paths",
        "trt_profile_min_shapes",
        "trt_profile_max_shapes",
        "trt_profile_opt_shapes",
        "trt_cuda_graph_enable",
        "trt_dump_ep_context_model",
        "trt_ep_context_file_path",
        "trt_ep_context_embed_mode",
    ];

    #[rstest]
    #[case(Precision::Fp32, false)]
    #[case(Precision::Fp16, true)]
    #[case(Precision::Int8, false)]
    fn tensorrt_keys_are_the_backends_and_fp16_keeps_layernorm_f32(
        #[case] precision: Precision,
        #[case] fallback: bool,
    ) {
        let gpu = config_with(InstanceKind::Gpu, false, precision, &[]);
        let keys = trt_keys(&gpu);
        for key in &keys {
            assert!(
                BACKEND_TRT_KEYS.contains(key),
                "{key} is not parsed by the backend"
            );
        }
        assert!(
            gpu.contains("parameters { key: \"trt_force_sequential_engine_build\" value: \"1\" }")
        );
        assert_eq!(
            keys.contains(&"trt_layer_norm_fp32_fallback"),
            fallback,
            "{gpu}"
        );
    }

    #[test]
    fn gpu_instances_warm_up_at_one_and_the_largest_batch() {
        let s = Spec::default().image_size;
        let gpu = config(InstanceKind::Gpu, true);
        let warmup = &gpu[gpu.find("model_warmup [").expect("model_warmup")..];
        for batch in [1, 16] {
            assert!(
                warmup.contains(&format!("batch_size: {batch}\n")),
                "{warmup}"
            );
        }
        assert_eq!(warmup.matches("key: \"image_u8\"").count(), 2, "{warmup}");
        assert_eq!(
            warmup
                .matches(&format!(
                    "data_type: TYPE_UINT8\n        dims: [ {s}, {s}, 3 ]"
                ))
                .count(),
            2,
            "{warmup}"
        );
        assert_eq!(warmup.matches("zero_data: true").count(), 2);
        for kind in [InstanceKind::Cpu, InstanceKind::Openvino] {
            assert!(!config(kind, false).contains("model_warmup"));
        }
    }

    #[test]
    fn preferred_batches_reach_the_batcher_and_the_profile_opt() {
        let s = Spec::default().image_size;
        let gpu = config_with(InstanceKind::Gpu, false, Precision::Fp32, &[4, 8]);
        assert!(gpu.contains("  preferred_batch_size: [ 4, 8 ]\n"), "{gpu}");
        assert!(
            gpu.contains(&format!(
                "\"trt_profile_opt_shapes\" value: \"image:8x3x{s}x{s}\""
            )),
            "{gpu}"
        );
        assert!(
            gpu.contains(&format!(
                "\"trt_profile_max_shapes\" value: \"image:16x3x{s}x{s}\""
            )),
            "{gpu}"
        );
        assert!(!config(InstanceKind::Gpu, false).contains("preferred_batch_size"));
    }

    #[rstest]
    #[case(&[], true)]
    #[case(&[4, 8], true)]
    #[case(&[16], true)]
    #[case(&[17], false)]
    #[case(&[0, 4], false)]
    #[case(&[8, 4], false)]
    #[case(&[4, 4], false)]
    fn preferred_batch_checks(#[case] sizes: &[u32], #[case] ok: bool) {
        assert_eq!(check_preferred_batch(sizes, 16).is_ok(), ok, "{sizes:?}");
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
