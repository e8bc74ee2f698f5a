//! `dlvp export --weights CKPT [--spec S] --out MODEL.onnx [--allow-unused] [--verify]`, and/or
//! `--triton-repo DIR` for a Triton Inference Server model repository
//! (`dlvp_exporter::artifacts::triton`); `--int8 --calibrate DIR` calibrates first
//! ([`calibrate`]).

mod calibrate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use dlvp_exporter::artifacts::{sidecar, triton};
use dlvp_exporter::{Checkpoint, ExportError, ExportOptions, InputKind, Precision, Target};
use dlvp_runtime::{BackendChoice, DetectorOptions, GraphInput, GraphShape, GraphSource};
use ndarray::{ArrayD, IxDyn};

use crate::cli::{resolve_spec, write_atomically, write_atomically_with};
use calibrate::CalibrationArgs;

#[derive(Args)]
pub struct ExportArgs {
    /// The DLVP checkpoint (safetensors, model-spec/README.md "Checkpoint format").
    #[arg(long)]
    weights: PathBuf,
    /// The model spec; defaults to the spec stored in the checkpoint.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Where to write the ONNX graph (written atomically); may be left out with --triton-repo.
    #[arg(long, required_unless_present = "triton_repo")]
    out: Option<PathBuf>,
    /// Accept checkpoint tensors the graph does not use (listed as a warning instead).
    #[arg(long)]
    allow_unused: bool,
    /// Put the weights in `OUT.data` beside the model (automatic above 1.8 GiB of weights, which
    /// protobuf cannot hold in one message).
    #[arg(long)]
    external_data: bool,
    /// Store weights and compute in f16, keeping LayerNorm, Softmax, reductions, TopK and Resize in
    /// f32; inputs and outputs stay f32.
    #[arg(long)]
    fp16: bool,
    /// Take `image_u8` [B, H, W, 3] uint8 RGB (already resized) and normalise inside the graph.
    #[arg(long)]
    embed_preprocess: bool,
    /// Run the new graph on a seeded random batch on tract and, when their libraries are found,
    /// ONNX Runtime and OpenVINO; report the outputs and the largest differences from tract.
    #[arg(long)]
    verify: bool,
    /// The ONNX Runtime library for --verify (default: ORT_DYLIB_PATH, then the project venv).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// The OpenVINO C library for --verify (default: DLVP_OPENVINO_LIB, then the project venv).
    #[arg(long)]
    ov_lib: Option<PathBuf>,
    /// The parser the graph is for: `tensorrt-8.5` decomposes LayerNormalization (it has no
    /// importer there). The graph is checked against the target (as `dlvp inspect --target`)
    /// and not written if it would be rejected.
    #[arg(long, value_parser = crate::cli::target_parser(), default_value = "generic")]
    target: Target,
    #[command(flatten)]
    calibration: CalibrationArgs,
    #[command(flatten)]
    triton: TritonArgs,
}

/// An export error as the CLI reports it: unused tensors with the hint, other export errors
/// naming the checkpoint; anything else (a calibration image, say) names itself already.
fn export_error(e: anyhow::Error, weights: &std::path::Path) -> anyhow::Error {
    match e.downcast_ref::<ExportError>() {
        Some(ExportError::Unused { .. }) => anyhow::anyhow!(
            "{}: {e} (wrong spec? pass --allow-unused to export anyway)",
            weights.display()
        ),
        Some(_) => e.context(format!("exporting {}", weights.display())),
        None => e,
    }
}

/// The Triton model repository options.
#[derive(Args)]
struct TritonArgs {
    /// Also write a Triton Inference Server model repository: DIR/NAME/config.pbtxt and
    /// DIR/NAME/1/model.onnx (ONNX Runtime backend, dynamic batching, TensorRT on GPU instances).
    #[arg(long, value_name = "DIR")]
    triton_repo: Option<PathBuf>,
    /// The model's name in the repository (default: the spec's name, made URL-safe).
    #[arg(long, requires = "triton_repo")]
    triton_name: Option<String>,
    /// Triton: the largest batch the dynamic batcher forms (also the TensorRT profile's maximum).
    #[arg(long, requires = "triton_repo", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_batch: u32,
    /// Triton: model instances (each a session) per device.
    #[arg(long, requires = "triton_repo", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    instances: u32,
    /// Triton: where the instances run; `cpu` configures no accelerator, `openvino` CPU instances
    /// with ONNX Runtime's OpenVINO execution provider.
    #[arg(long, requires = "triton_repo", default_value = "gpu",
          value_parser = crate::cli::named_values_with_help(&triton::InstanceKind::ALL, triton::InstanceKind::about))]
    triton_kind: triton::InstanceKind,
    /// Triton: how long the dynamic batcher may hold a request to fill a batch, microseconds.
    #[arg(long, requires = "triton_repo", default_value_t = 0)]
    queue_delay_us: u64,
    /// Triton: batch sizes the dynamic batcher should prefer, ascending, each at most
    /// --max-batch (e.g. `4,8`); the largest is also the TensorRT profile's `opt` batch.
    /// Default: none (the batcher forms the largest batch it can).
    #[arg(
        long,
        requires = "triton_repo",
        value_delimiter = ',',
        value_name = "N,..."
    )]
    preferred_batch: Vec<u32>,
    /// Triton (GPU): the folder on the server for TensorRT engines and timing caches
    /// (default /tmp/dlvp-trt-cache/NAME; it must be writable by the server).
    #[arg(long, requires = "triton_repo", value_name = "SERVER_DIR")]
    triton_trt_cache: Option<String>,
    /// Triton (GPU): TensorRT builder workspace, MiB.
    #[arg(long, requires = "triton_repo", default_value_t = 2048)]
    triton_workspace_mib: u64,
}

/// The graph as it is written: one self-contained file, or a model per destination with its
/// weights in a data file beside it.
enum Serialized {
    /// Encoded into each destination file as it is written.
    Single(Box<dlvp_exporter::OnnxModel>),
    External(Box<dlvp_exporter::Export>),
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let ckpt = Arc::new(Checkpoint::open(&args.weights)?);
    let (spec, origin) = resolve_spec(&ckpt, args.spec.clone())?;
    let input = if args.embed_preprocess {
        InputKind::ImageU8
    } else {
        InputKind::Image
    };
    let options = ExportOptions {
        input,
        precision: if args.fp16 {
            Precision::Fp16
        } else if args.calibration.int8 {
            Precision::Int8
        } else {
            Precision::Fp32
        },
        target: args.target,
        allow_unused: args.allow_unused,
    };
    // The Triton model's name and batch sizes are checked before anything is written or calibrated.
    let triton_model = match &args.triton.triton_repo {
        Some(dir) => {
            let name = match &args.triton.triton_name {
                Some(name) => name.clone(),
                None => triton::default_model_name(&spec),
            };
            triton::check_model_name(&name).map_err(|e| anyhow::anyhow!("--triton-name: {e}"))?;
            triton::check_preferred_batch(&args.triton.preferred_batch, args.triton.max_batch)
                .map_err(|e| match e {
                    triton::PreferredBatchError::AboveMax { size, max_batch } => anyhow::anyhow!(
                        "--preferred-batch: {size} is larger than --max-batch {max_batch} (Triton refuses a preferred batch size above max_batch_size)"
                    ),
                    e => anyhow::anyhow!("--preferred-batch: {e}"),
                })?;
            Some((dir.join(&name), name))
        }
        None => None,
    };
    // int8: calibrate first, on the fp32 graph, then build the quantized one.
    let quantization = if args.calibration.int8 {
        let q = calibrate::calibrate(
            Arc::clone(&ckpt),
            &spec,
            options,
            &args.calibration,
            args.ort_lib.as_deref(),
        );
        Some(q.map_err(|e| export_error(e, &args.weights))?)
    } else {
        None
    };
    // The checkpoint moves in: its mapping is released once the graph holds the weights.
    let exported = match &quantization {
        Some(q) => dlvp_exporter::export_int8(ckpt, &spec, options, q),
        None => dlvp_exporter::export(ckpt, &spec, options),
    };
    let exported = exported.map_err(|e| export_error(e.into(), &args.weights))?;
    if !exported.unused.is_empty() {
        eprintln!(
            "warning: {}: unused tensor(s): {}",
            args.weights.display(),
            exported.unused.join(", ")
        );
    }
    let external = args.external_data || exported.needs_external_data();
    if args.verify && external {
        eprintln!("note: --verify runs single-file graphs only; verify a single-file export of the same checkpoint");
    }
    let mut destinations: Vec<PathBuf> = args.out.iter().cloned().collect();
    if let Some((model_dir, _)) = &triton_model {
        destinations.push(model_dir.join("1").join("model.onnx"));
    }
    let (nodes, initializers) = (
        exported.graph.nodes.len(),
        exported.graph.initializers.len(),
    );
    // A single file takes the export (its weights move into the message); external data keeps it,
    // since each destination records its own data file's name.
    let serialized = if external {
        Serialized::External(Box::new(exported))
    } else {
        Serialized::Single(Box::new(
            exported
                .into_model()
                .with_context(|| destinations[0].display().to_string())?,
        ))
    };
    if let Serialized::Single(model) = &serialized {
        if args.verify {
            // Verified before it is written: a graph that fails leaves the previous file in place.
            // The backends load from bytes, a second copy of the weights for as long as this runs.
            verify(
                model.to_bytes(),
                input,
                spec.image_size,
                args.ort_lib.as_deref(),
                args.ov_lib.as_deref(),
                options.precision,
            )?;
        }
    }
    let mut written_bytes = 0;
    for path in &destinations {
        let model_file = path
            .file_name()
            .with_context(|| format!("{}: names no file", path.display()))?
            .to_string_lossy()
            .into_owned();
        let data_file = format!("{model_file}.data");
        written_bytes = match &serialized {
            Serialized::Single(model) => {
                write_atomically_with(path, |file| model.write_to(file).map(drop))?;
                model.encoded_len()
            }
            Serialized::External(exported) => {
                // The data file's name is recorded in the graph, so each destination gets its own.
                // The data first, streamed from the graph: a model never points at a data file
                // that is not complete.
                let data_path = path.with_file_name(&data_file);
                let mut model = None;
                let mut data_bytes = 0u64;
                write_atomically_with(&data_path, |file| {
                    model = Some(
                        exported
                            .write_external(&data_file, &mut *file)
                            .map_err(std::io::Error::other)?,
                    );
                    data_bytes = file.metadata()?.len();
                    Ok(())
                })?;
                let model = model.expect("set by the writer");
                write_atomically_with(path, |file| model.write_to(file).map(drop))?;
                println!(
                    "{}: external weights, {:.1} MB",
                    data_path.display(),
                    data_bytes as f64 / 1e6
                );
                model.encoded_len()
            }
        };
        let sidecar = sidecar::sidecar(&sidecar::SidecarInput {
            spec: &spec,
            model_file: &model_file,
            external_data: external.then_some(data_file.as_str()),
            input: options.input,
            precision: options.precision,
        });
        write_atomically(
            &path.with_file_name(format!("{model_file}.json")),
            format!("{}\n", serde_json::to_string_pretty(&sidecar)?).as_bytes(),
        )?;
    }
    if let Some((model_dir, name)) = &triton_model {
        let t = &args.triton;
        let trt_cache = t
            .triton_trt_cache
            .clone()
            .unwrap_or_else(|| format!("/tmp/dlvp-trt-cache/{name}"));
        let config = triton::config_pbtxt(&triton::TritonConfig {
            name,
            spec: &spec,
            input: options.input,
            precision: options.precision,
            max_batch: t.max_batch,
            instances: t.instances,
            kind: t.triton_kind,
            trt_cache: &trt_cache,
            workspace_bytes: t.triton_workspace_mib << 20,
            queue_delay_us: t.queue_delay_us,
            preferred_batch: &t.preferred_batch,
        });
        // Written last: a server polling the repository sees a config only once its model is there.
        let config_path = model_dir.join("config.pbtxt");
        write_atomically(&config_path, config.as_bytes())?;
        println!(
            "{}: Triton model `{name}` (max batch {}, {} {} instance(s))",
            config_path.display(),
            t.max_batch,
            t.instances,
            match t.triton_kind {
                triton::InstanceKind::Gpu => "GPU",
                triton::InstanceKind::Cpu => "CPU",
                triton::InstanceKind::Openvino => "CPU (OpenVINO)",
            }
        );
    }
    println!(
        "{}: {} nodes, {} initializers, {:.1} MB ({} from {}, spec {}), {:.1} s",
        destinations
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        nodes,
        initializers,
        written_bytes as f64 / 1e6,
        spec.name,
        args.weights.display(),
        origin,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs the graph on a seeded batch of 2 of its `input` kind on tract, ONNX Runtime and OpenVINO
/// (when their libraries are found) and checks it as `dlvp_runtime::verify` does, printing each
/// run.
fn verify(
    bytes: Vec<u8>,
    input: InputKind,
    size: usize,
    ort_lib: Option<&std::path::Path>,
    ov_lib: Option<&std::path::Path>,
    precision: Precision,
) -> anyhow::Result<()> {
    let mut rng = dlvp_demo_data::rng::Rng::new(0x2545_F491_4F6C_DD1D);
    let shape = IxDyn(&GraphInput::expected_shape(input, 2, size));
    let image = match input {
        InputKind::Image => {
            GraphInput::Image(ArrayD::from_shape_simple_fn(shape, || rng.range(-1.0, 1.0)))
        }
        InputKind::ImageU8 => {
            GraphInput::ImageU8(ArrayD::from_shape_simple_fn(shape, || rng.below(256) as u8))
        }
    };
    // An int8 graph's answers depend on the CPU's int8 kernels: say which ones this verifies,
    // and refuse a graph that they would compute wrongly here.
    if precision == Precision::Int8 && !int8_on_this_cpu(&bytes)? {
        bail!(
            "verify: this int8 graph's weights would saturate ONNX Runtime's and OpenVINO's int8 \
             kernels on this CPU (no avx512_vnni, avx_vnni or amx_int8): export with \
             --int8-weights reduced (the default), or verify and deploy on CPUs with VNNI only"
        );
    }
    // A library the user named must exist; one we only looked for may be absent.
    let mut others = Vec::new();
    match crate::cli::libraries::find(ort_lib) {
        None => println!(
            "verify onnxruntime: skipped ({})",
            crate::cli::libraries::HINT
        ),
        Some(path) => {
            dlvp_runtime::ort_lib::locate(Some(&path))?;
            let options = DetectorOptions {
                ort_lib: Some(path),
                ..Default::default()
            };
            others.push(("onnxruntime-cpu", BackendChoice::OrtCpu, options));
        }
    }
    match crate::cli::libraries::find_openvino(ov_lib) {
        None => println!(
            "verify openvino: skipped ({})",
            crate::cli::libraries::OPENVINO_HINT
        ),
        Some(path) => {
            let options = DetectorOptions {
                openvino_lib: Some(path),
                ..Default::default()
            };
            others.push(("openvino-cpu", BackendChoice::OpenVino, options));
        }
    }
    let shape = GraphShape {
        input,
        image_size: size,
    };
    let source = GraphSource::from(bytes);
    dlvp_runtime::verify::verify(&source, shape, precision, &image, &others, &mut |step| {
        let Some((score, map, topk)) = step.against_tract else {
            let (lo, hi) = dlvp_runtime::verify::map_range(&step.outputs);
            let scores: Vec<String> = step
                .outputs
                .anomaly_score
                .iter()
                .map(|v| format!("{v:.4}"))
                .collect();
            let topk: Vec<&i64> = step.outputs.topk_indices.iter().collect();
            println!(
                "verify tract (batch 2, {:.1} s): scores {scores:?}, map range [{lo:.4}, {hi:.4}], topk {topk:?}",
                step.seconds
            );
            return;
        };
        println!(
            "verify {} ({:.1} s): vs tract max abs difference score {score:.2e}, map {map:.2e}, topk {}",
            step.label,
            step.seconds,
            if topk { "equal" } else { "DIFFERENT" }
        );
    })?;
    Ok(())
}

/// Prints the CPU features an int8 verification runs on and what the graph's weights need of
/// them; whether ONNX Runtime's and OpenVINO's CPU kernels compute the graph exactly here.
fn int8_on_this_cpu(bytes: &[u8]) -> anyhow::Result<bool> {
    use dlvp_runtime::int8_kernels::{audit, CpuFeatures};
    use prost::Message;
    let model = dlvp_onnx_proto::ModelProto::decode(bytes).context("verify: decoding the graph")?;
    let weights = match model.graph.as_ref() {
        Some(g) => audit(g)?,
        None => None,
    };
    let cpu = CpuFeatures::detect();
    let dot = if cpu.int8_dot_product_exact() {
        "int8 products accumulate in 32 bits"
    } else {
        "no VNNI: int8 products are summed in pairs in 16 bits"
    };
    println!(
        "verify int8 on CPU features: {} ({dot})",
        cpu.names().join(" ")
    );
    let Some(w) = weights else {
        return Ok(true);
    };
    println!(
        "verify int8 weights: {} tensors, |q| <= {}, largest pair sum {}: {}",
        w.weights,
        w.max_abs_q,
        w.worst_pair_sum,
        w.verdict()
    );
    Ok(w.exact_without_vnni() || cpu.int8_dot_product_exact())
}
