//! `dlvp bench [--model M] [--backend B] [--batch N] [--iters N] [--warmup N] [--json]`: how fast a
//! graph runs here — load time, the first run (TensorRT builds its engine then), latency
//! percentiles per batch after warm-up, images per second and peak memory, with the backend and
//! execution provider that really ran. `--backend openvino --ov-cache DIR` reports both load
//! times: compiling, and reading the compiled model back from DIR.
//!
//! Each timed call is `Detector::detect_batch` on decoded RGB images already at the model's
//! H×W: preprocessing (normalisation) and the graph, not image decoding or file output. With
//! `--input FILE.safetensors` (like trtexec's `--loadInputs`) each call is the graph alone on that
//! tensor, and `--save-outputs` writes what the last call returned (trtexec's `--exportOutput`),
//! so other runtimes can be compared on the same numbers (`bench/compare`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use dlvp_exporter::weights::Dtype;
use dlvp_runtime::pipeline::{self, PipelineOptions};
use dlvp_runtime::preprocess::DEFAULT_MAX_PIXELS;
use dlvp_runtime::{GraphInput, InputKind};
use image::RgbImage;

use crate::cli::{load_detector, RunArgs};
use dlvp_runtime::BackendChoice;

#[derive(Args)]
pub struct BenchArgs {
    /// An ONNX graph written by `dlvp export` (default: the embedded demo model).
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Images per run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch: u32,
    /// Timed runs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    iters: u32,
    /// Untimed runs after the first, before timing.
    #[arg(long, default_value_t = 3)]
    warmup: u32,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Time the graph alone on this input instead of test images: a safetensors file holding the
    /// graph's input, f32 `image` [B, 3, S, S] already normalised, or U8 `image_u8` [B, S, S, 3]
    /// for `--embed-preprocess` graphs (the batch is its B).
    #[arg(long, value_name = "FILE.safetensors", conflicts_with = "batch")]
    input: Option<PathBuf>,
    /// Write the last timed run's outputs (anomaly_score, anomaly_map, topk_indices) to this
    /// safetensors file.
    #[arg(long, value_name = "FILE.safetensors", requires = "input")]
    save_outputs: Option<PathBuf>,
    /// Time the whole pipeline instead, end to end on these images (folders, files or quoted
    /// globs) as `dlvp detect` reads them, in batches of --batch: images/s and the ms per image
    /// of each stage (decode, resize, infer, finish, deliver), nothing written.
    #[arg(long, value_name = "DIR", num_args = 1.., conflicts_with = "input")]
    pipeline: Vec<PathBuf>,
    /// With --pipeline: decode JPEGs at 1/2, 1/4 or 1/8 scale (as `detect --jpeg-draft`).
    #[arg(long, requires = "pipeline", conflicts_with = "tile")]
    jpeg_draft: bool,
    /// With --pipeline: score the images tiled (as `detect --tile`) and report seconds per
    /// megapixel and tiles per second.
    #[command(flatten)]
    tiles: crate::cli::TileArgs,
}

/// `--pipeline --tile`: each image tiled through the pipeline (as `detect --tile` runs it), its
/// tiles in batches of --batch.
fn bench_tiled(
    detector: &dlvp_runtime::Detector,
    args: &BenchArgs,
    files: &[PathBuf],
    tiling: &dlvp_runtime::tiling::TileOptions,
) -> anyhow::Result<ExitCode> {
    let options = PipelineOptions {
        keep_images: false,
        tiling: Some(*tiling),
        ..PipelineOptions::new(args.batch as usize, DEFAULT_MAX_PIXELS)
    };
    let (mut pixels, mut failed) = (0u64, Vec::new());
    let times = pipeline::run(
        detector,
        files,
        &options,
        |_, _| (),
        |s| s.size.0 as u64 * s.size.1 as u64,
        |_, _, r| {
            match r {
                Ok(p) => pixels += p,
                Err(e) => failed.push(crate::cli::image_error(e)),
            }
            true
        },
    )?;
    let (tiles, seconds) = (times.tiles, times.wall.as_secs_f64());
    for e in &failed {
        eprintln!("error: {e}");
    }
    let images = files.len() - failed.len();
    let mp = pixels as f64 / 1e6;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"images": images, "failed": failed.len(), "seconds": seconds,
            "megapixels": mp, "tiles": tiles, "seconds_per_megapixel": seconds / mp.max(1e-9),
            "tiles_per_s": tiles as f64 / seconds.max(1e-9), "tiling": tiling.describe(),
            "batch": args.batch, "backend": detector.backend().name(), "provider": detector.executor()})
        );
    } else {
        println!(
            "tiled ({}): {images} images, {mp:.1} MP, {tiles} tiles in {seconds:.2} s: {:.3} s per MP, {:.1} tiles/s (batches of {})",
            tiling.describe(),
            seconds / mp.max(1e-9),
            tiles as f64 / seconds.max(1e-9),
            args.batch
        );
        println!("{times} ({options})");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--pipeline`: the images through `dlvp_runtime::pipeline`, timed by stage.
fn bench_pipeline(detector: &dlvp_runtime::Detector, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let (files, problems) = crate::cli::inputs::expand(&args.pipeline, None).into_paths();
    if !problems.is_empty() || files.is_empty() {
        bail!(
            "--pipeline: {}",
            if problems.is_empty() {
                "no images".into()
            } else {
                problems.join("; ")
            }
        );
    }
    if let Some(tiling) = args.tiles.options()? {
        return bench_tiled(detector, args, &files, &tiling);
    }
    let options = PipelineOptions {
        jpeg_draft: args.jpeg_draft,
        ..PipelineOptions::new(args.batch as usize, DEFAULT_MAX_PIXELS)
    };
    let mut failed = Vec::new();
    let times = pipeline::run(
        detector,
        &files,
        &options,
        |_, _| (),
        |_| (),
        |_, _, r| {
            if let Err(e) = r {
                failed.push(crate::cli::image_error(e));
            }
            true
        },
    )?;
    for e in &failed {
        eprintln!("error: {e}");
    }
    if args.json {
        let stages: serde_json::Map<String, serde_json::Value> = times
            .ms_per_image()
            .iter()
            .map(|(k, v)| (k.to_string(), (*v).into()))
            .collect();
        println!(
            "{}",
            serde_json::json!({"images": times.images, "failed": times.failed,
            "seconds": times.wall.as_secs_f64(), "images_per_s": times.images_per_second(),
            "ms_per_image": stages, "decoders": options.decoders, "finishers": options.finishers,
            "batch": options.batch, "backend": detector.backend().name(), "provider": detector.executor()})
        );
    } else {
        println!("pipeline: {times} ({options})");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The input batch of a `--input` file: tensor `image` (f32 [B, 3, S, S]) or `image_u8` (U8
/// [B, S, S, 3]), whichever the file holds. Read by the checkpoint reader, so a damaged file gets
/// the same precise messages as a damaged checkpoint, and F16/BF16 inputs convert like weights do.
fn read_input(path: &std::path::Path) -> anyhow::Result<GraphInput> {
    let file = dlvp_exporter::Checkpoint::open(path)?;
    let tensors = file.tensors();
    let (kind, info) = match (tensors.get("image"), tensors.get("image_u8")) {
        (Some(info), None) => (InputKind::Image, info),
        (None, Some(info)) => (InputKind::ImageU8, info),
        (Some(_), Some(_)) => bail!(
            "{}: holds both `image` and `image_u8`; keep one",
            path.display()
        ),
        (None, None) => bail!(
            "{}: no tensor `image` (f32 [B, 3, S, S]) or `image_u8` (U8 [B, S, S, 3])",
            path.display()
        ),
    };
    let per_image_ok = match kind {
        InputKind::Image => info.shape.len() == 4 && info.shape[1] == 3,
        InputKind::ImageU8 => {
            info.shape.len() == 4 && info.shape[3] == 3 && info.dtype == Dtype::Other("U8".into())
        }
    };
    if !per_image_ok {
        let expected = match kind {
            InputKind::Image => "a float [B, 3, S, S]",
            InputKind::ImageU8 => "U8 [B, S, S, 3]",
        };
        bail!(
            "{}: `{kind}` is {} {:?}; expected {expected}",
            path.display(),
            info.dtype,
            info.shape
        );
    }
    let shape = ndarray::IxDyn(&info.shape);
    Ok(match kind {
        InputKind::Image => GraphInput::Image(ndarray::ArrayD::from_shape_vec(
            shape,
            file.read_f32("image")?,
        )?),
        InputKind::ImageU8 => GraphInput::ImageU8(ndarray::ArrayD::from_shape_vec(
            shape,
            file.raw_bytes("image_u8").expect("listed above").to_vec(),
        )?),
    })
}

/// The graph's outputs as a safetensors file (written atomically).
fn save_outputs(
    path: &std::path::Path,
    out: &dlvp_runtime::outputs::Outputs,
) -> anyhow::Result<()> {
    use safetensors::{tensor::TensorView, Dtype};
    let score: Vec<u8> = out
        .anomaly_score
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let map: Vec<u8> = out
        .anomaly_map
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let topk: Vec<u8> = out
        .topk_indices
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let tensors = [
        (
            "anomaly_score",
            Dtype::F32,
            out.anomaly_score.shape(),
            &score,
        ),
        ("anomaly_map", Dtype::F32, out.anomaly_map.shape(), &map),
        ("topk_indices", Dtype::I64, out.topk_indices.shape(), &topk),
    ]
    .into_iter()
    .map(|(name, dtype, shape, data)| {
        TensorView::new(dtype, shape.to_vec(), data)
            .map(|view| (name, view))
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))
    })
    .collect::<anyhow::Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(tensors, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(crate::cli::write_atomically(path, &bytes)?)
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if the system reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The `q` quantile (0..=1) of sorted `xs`, linearly interpolated.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// A deterministic textured test image (the content does not change the work a ViT does).
fn test_image(size: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(size, size, |x, y| {
        let v = (x.wrapping_mul(31) ^ y.wrapping_mul(17)).wrapping_add(seed.wrapping_mul(97));
        image::Rgb([(v % 251) as u8, (v / 3 % 241) as u8, (x + y) as u8])
    })
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.tiles.tile && args.pipeline.is_empty() {
        bail!("--tile times images end to end: give them with --pipeline DIR...");
    }
    let model = crate::cli::resolve_model(args.model.as_deref());
    let input = args.input.as_deref().map(read_input).transpose()?;
    let batch_size = input.as_ref().map_or(args.batch, |x| x.batch() as u32);
    // OpenVINO with --ov-cache: both load times, compiling and reading the compiled model back.
    // A first load compiles (filling an empty cache folder, or with the cache off when the
    // folder is filled already) and is dropped; the detector timed below then loads from the
    // cache. Peak RSS covers both loads, so it includes compilation, as a first start would.
    let compile_s = match (&args.run.ov_cache, args.run.backend) {
        (Some(dir), BackendChoice::OpenVino) => {
            let filled = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
            let first = RunArgs {
                ov_cache: if filled { None } else { Some(dir.clone()) },
                ..args.run.clone()
            };
            let t = Instant::now();
            drop(load_detector(&model, &first, batch_size)?);
            Some(t.elapsed().as_secs_f64())
        }
        _ => None,
    };
    let t = Instant::now();
    let detector = load_detector(&model, &args.run, batch_size)?;
    let load_s = t.elapsed().as_secs_f64();
    if !args.pipeline.is_empty() {
        return bench_pipeline(&detector, &args);
    }
    let size = detector.info().spec.image_size as u32;
    if let (Some(x), Some(path)) = (&input, &args.input) {
        let wanted = detector.info().input;
        let expected = GraphInput::expected_shape(wanted, x.batch(), size as usize);
        if x.kind() != wanted || x.shape() != expected {
            bail!(
                "{}: `{}` {:?} does not fit {}, which takes `{wanted}` {expected:?}",
                path.display(),
                x.kind(),
                x.shape(),
                model.label(),
            );
        }
    }
    let batch: Vec<RgbImage> = (0..batch_size).map(|i| test_image(size, i)).collect();
    // One call: the graph alone on --input, or preprocessing + graph on the test images.
    let call = || -> anyhow::Result<Option<dlvp_runtime::outputs::Outputs>> {
        Ok(match &input {
            Some(x) => Some(detector.run(x.clone())?),
            None => {
                detector.detect_batch(&batch)?;
                None
            }
        })
    };

    let t = Instant::now();
    call()?;
    let first_s = t.elapsed().as_secs_f64();
    for _ in 0..args.warmup {
        call()?;
    }
    let mut times = Vec::with_capacity(args.iters as usize);
    let mut last = None;
    for _ in 0..args.iters {
        let t = Instant::now();
        last = call()?;
        times.push(t.elapsed().as_secs_f64());
    }
    if let (Some(path), Some(out)) = (&args.save_outputs, &last) {
        save_outputs(path, out)?;
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let (p50, p90, p99) = (
        quantile(&sorted, 0.5),
        quantile(&sorted, 0.9),
        quantile(&sorted, 0.99),
    );
    let images_per_s = batch_size as f64 / mean;
    let rss = peak_rss_bytes();
    let threads = args.run.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |n| n as usize,
    );
    if args.json {
        let line = serde_json::json!({
            "model": model.label(),
            "spec": detector.info().spec.name,
            "image_size": size,
            "precision": detector.info().precision.name(),
            "backend": detector.backend().name(),
            "provider": detector.executor(),
            "batch": batch_size,
            "input": if input.is_some() { "tensor (graph only)" } else { "test images (normalisation + graph)" },
            "iters": args.iters,
            "warmup": args.warmup,
            "load_s": load_s,
            "load_compile_s": compile_s,
            "first_run_s": first_s,
            "latency_ms": {"mean": mean * 1e3, "p50": p50 * 1e3, "p90": p90 * 1e3, "p99": p99 * 1e3,
                           "min": sorted[0] * 1e3, "max": sorted[sorted.len() - 1] * 1e3},
            "images_per_s": images_per_s,
            "peak_rss_bytes": rss,
            "cpu_threads": threads,
        });
        println!("{line}");
    } else {
        println!(
            "model        {} ({}, {}×{} px, {})",
            model.label(),
            detector.info().spec.name,
            size,
            size,
            detector.info().precision
        );
        println!(
            "backend      {} [{}], {} CPU threads",
            detector.backend(),
            detector.executor(),
            threads
        );
        match compile_s {
            Some(c) => {
                println!("load         {load_s:.3} s from the OpenVINO cache ({c:.3} s compiling)")
            }
            None => println!("load         {load_s:.3} s"),
        }
        println!(
            "first run    {:.1} ms (batch {})",
            first_s * 1e3,
            batch_size
        );
        println!(
            "latency      p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   (per batch of {}, {} runs after {} warm-up)",
            p50 * 1e3,
            p90 * 1e3,
            p99 * 1e3,
            batch_size,
            args.iters,
            args.warmup
        );
        println!(
            "throughput   {:.1} images/s   ({:.1} ms per image)",
            images_per_s,
            mean * 1e3 / batch_size as f64
        );
        if let Some(rss) = rss {
            println!("peak RSS     {:.1} MiB", rss as f64 / (1024.0 * 1024.0));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&xs, 0.5), 3.0);
        assert_eq!(quantile(&xs, 0.9), 4.6);
        assert_eq!(quantile(&xs, 0.0), 1.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_bytes().unwrap() > 1024 * 1024);
        }
    }
}
