//! `dlvp bench [--model M] [--backend B] [--batch N] [--iters N] [--warmup N] [--json]`: how fast a
//! graph runs here — load time, the first run (TensorRT builds its engine then), latency
//! percentiles per batch after warm-up, images per second and peak memory, with the backend and
//! execution provider that really ran.
//!
//! Each timed call is `Detector::detect_batch` on decoded RGB images already at the model's
//! H×W: preprocessing (normalisation) and the graph, not image decoding or file output.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use image::RgbImage;

use super::{load_detector, RunArgs};

#[derive(Args)]
pub struct BenchArgs {
    /// An ONNX graph written by `dlvp export` (default: the embedded demo model).
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
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
    let model = super::resolve_model(args.model.as_deref())?;
    let t = Instant::now();
    let detector = load_detector(&model, &args.run, args.batch)?;
    let load_s = t.elapsed().as_secs_f64();
    let size = detector.info().spec.image_size as u32;
    let batch: Vec<RgbImage> = (0..args.batch).map(|i| test_image(size, i)).collect();

    let t = Instant::now();
    detector.detect_batch(&batch)?;
    let first_s = t.elapsed().as_secs_f64();
    for _ in 0..args.warmup {
        detector.detect_batch(&batch)?;
    }
    let mut times = Vec::with_capacity(args.iters as usize);
    for _ in 0..args.iters {
        let t = Instant::now();
        detector.detect_batch(&batch)?;
        times.push(t.elapsed().as_secs_f64());
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let (p50, p90, p99) = (
        quantile(&sorted, 0.5),
        quantile(&sorted, 0.9),
        quantile(&sorted, 0.99),
    );
    let images_per_s = args.batch as f64 / mean;
    let rss = peak_rss_bytes();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.json {
        let line = serde_json::json!({
            "model": model.display().to_string(),
            "spec": detector.info().spec.name,
            "image_size": size,
            "precision": detector.info().precision,
            "backend": detector.backend(),
            "provider": detector.provider(),
            "batch": args.batch,
            "iters": args.iters,
            "warmup": args.warmup,
            "load_s": load_s,
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
            model.display(),
            detector.info().spec.name,
            size,
            size,
            detector.info().precision
        );
        println!(
            "backend      {} [{}], {} CPU threads",
            detector.backend(),
            detector.provider(),
            threads
        );
        println!("load         {:.3} s", load_s);
        println!(
            "first run    {:.1} ms (batch {})",
            first_s * 1e3,
            args.batch
        );
        println!(
            "latency      p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   (per batch of {}, {} runs after {} warm-up)",
            p50 * 1e3,
            p90 * 1e3,
            p99 * 1e3,
            args.batch,
            args.iters,
            args.warmup
        );
        println!(
            "throughput   {:.1} images/s   ({:.1} ms per image)",
            images_per_s,
            mean * 1e3 / args.batch as f64
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
