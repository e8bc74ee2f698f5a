//! `dlvp export --int8 --calibrate DIR [--calib-count N] [--calib-method M] [--int8-layers L]`:
//! int8 calibration (model-spec/README.md, "Precision"). The fp32 graph, with the input of every
//! Linear to be quantized exposed as an extra output (`dlvp_exporter::calibration_graph`), runs
//! on our own runtime — ONNX Runtime CPU where its library is found, tract otherwise — over
//! images from DIR, preprocessed exactly as `dlvp detect` does, one image per run. Each tensor's
//! values go into a histogram (`dlvp_exporter::calibration`) whose threshold becomes its
//! symmetric int8 scale. The same images in the same order give the same scales, so two exports
//! are byte-identical.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use dlvp_exporter::calibration::{Calibration, CalibrationSettings, Method};
use dlvp_exporter::{Checkpoint, ExportOptions, Quantization, Selection, Spec, WeightRange};
use dlvp_runtime::preprocess::{graph_input, load_rgb8_limited, DEFAULT_MAX_PIXELS};
use dlvp_runtime::{BackendChoice, DetectorOptions, GraphShape};

use crate::cli::progress::Progress;

#[derive(Args)]
pub struct CalibrationArgs {
    /// Export an int8 QDQ graph (static quantization): the Linear layers of the transformer
    /// blocks get int8 weights (per output channel) and int8 inputs (per tensor, from
    /// calibration), both symmetric with zero point 0; everything else stays f32.
    #[arg(long, requires = "calibrate", conflicts_with = "fp16")]
    pub int8: bool,
    /// Calibration images for --int8: a folder, searched recursively (defect-free images of the
    /// parts you will inspect are the natural choice).
    #[arg(long, value_name = "DIR", requires = "int8")]
    pub calibrate: Option<PathBuf>,
    /// How many of the folder's images to use (spread evenly over its sorted list).
    #[arg(long, default_value_t = 64, requires = "int8",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub calib_count: u32,
    /// How an activation's range is chosen: minmax (largest |x|), percentile (99.99% of |x|),
    /// entropy (TensorRT's KL-divergence threshold).
    #[arg(long, default_value = "percentile", requires = "int8")]
    pub calib_method: Method,
    /// Which Linear layers are quantized: `blocks` (every transformer block of the image and
    /// text towers) or `blocks-but-selection` (the first image pass, whose CLS attention picks
    /// the Top-K patches, stays f32).
    #[arg(long, default_value = "blocks", requires = "int8",
          value_parser = crate::cli::named_values(&Selection::ALL))]
    pub int8_layers: Selection,
    /// How much of int8 the weights use: `reduced` (|q| ≤ 64: exact on every CPU — x86 CPUs
    /// without VNNI sum pairs of int8 products in 16 bits, which larger weights overflow) or
    /// `full` (|q| ≤ 127: half the weight rounding error, exact only on CPUs with VNNI or AMX,
    /// Arm and GPUs; `--verify` refuses it on a CPU where ONNX Runtime or OpenVINO would be wrong).
    #[arg(long, default_value = "reduced", requires = "int8",
          value_parser = crate::cli::named_values(&WeightRange::ALL))]
    pub int8_weights: WeightRange,
}

/// The images of `dir` (recursive, sorted), or an error naming the folder.
fn calibration_images(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("--calibrate {}: not a folder", dir.display());
    }
    let out =
        dlvp_eval::dataset::images_under(dir).map_err(|e| anyhow::anyhow!("--calibrate {e}"))?;
    if out.is_empty() {
        bail!(
            "--calibrate {}: no images (searched recursively for {})",
            dir.display(),
            dlvp_eval::dataset::IMAGE_EXTENSIONS.join(", ")
        );
    }
    Ok(out)
}

/// How the metadata names the runtime calibration ran on.
fn runtime_name(backend: BackendChoice) -> &'static str {
    match backend {
        BackendChoice::OrtCpu => "onnxruntime-cpu",
        other => other.name(),
    }
}

/// Calibrates the export of `spec` from `ckpt` with `options` on the images `args` names, and
/// returns what the int8 export needs.
pub fn calibrate(
    ckpt: Arc<Checkpoint>,
    spec: &Spec,
    options: ExportOptions,
    args: &CalibrationArgs,
    ort_lib: Option<&Path>,
) -> anyhow::Result<Quantization> {
    let dir = args
        .calibrate
        .as_deref()
        .expect("clap: --int8 requires --calibrate");
    let images =
        dlvp_exporter::calibration::spread(calibration_images(dir)?, args.calib_count as usize);
    let selection = args.int8_layers;
    let (export, taps) = dlvp_exporter::calibration_graph(ckpt, spec, options, selection)?;
    let bytes = export.into_model()?.to_bytes();
    let size = spec.image_size;
    let ort_lib = crate::cli::libraries::find(ort_lib);
    let backend = match ort_lib {
        Some(_) => BackendChoice::OrtCpu,
        None => BackendChoice::Tract,
    };
    let shape = GraphShape {
        input: options.input,
        image_size: size,
    };
    let runner = dlvp_runtime::backend::open(
        backend,
        &bytes.into(),
        shape,
        &DetectorOptions {
            ort_lib,
            ..Default::default()
        },
    )?;
    eprintln!(
        "calibrating {} activations on {} image(s) from {} ({}, {})",
        taps.len(),
        images.len(),
        dir.display(),
        runtime_name(backend),
        args.calib_method
    );
    let mut calibration = Calibration::new(taps);
    let mut progress = Progress::new(images.len());
    for path in &images {
        let bytes = std::fs::read(path)
            .with_context(|| format!("{}: cannot read calibration image", path.display()))?;
        let relative = path.strip_prefix(dir).unwrap_or(path);
        calibration.add_image(&relative.to_string_lossy(), &bytes);
        let image = load_rgb8_limited(path, DEFAULT_MAX_PIXELS)
            .with_context(|| format!("{}: calibration image", path.display()))?;
        let input = graph_input(&[image], size, &spec.preprocess, options.input);
        let values = runner.run_outputs(input, calibration.taps())?;
        calibration.add_activations(&values)?;
        progress.advance(1);
    }
    progress.finish();
    Ok(calibration.finish(CalibrationSettings {
        method: args.calib_method,
        selection,
        weight_range: args.int8_weights,
        runtime: runtime_name(backend),
    })?)
}
