//! `dlvp detect PATH... --model M [--backend B] [--out DIR] [--threshold T] [--show-topk] [--batch N] [--json]`.
//!
//! Scores images (files, or directories searched recursively) with a dlvp graph; with `--out`,
//! writes per image a heatmap overlay, the map as a 16-bit PNG at the image's size and, with
//! `--threshold`, a binary mask — each written atomically. A bad image is reported and skipped;
//! the exit status is then 1.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use dlvp_eval::dataset::is_image;
use dlvp_runtime::postprocess::{draw_topk, map_u16, mask, overlay, png_bytes, resize_map};
use dlvp_runtime::preprocess::load_rgb8_limited;
use image::RgbImage;

use crate::cli::progress::Progress;
use crate::cli::{load_detector, write_atomically, RunArgs};

#[derive(Args)]
pub struct DetectArgs {
    /// Image files, directories (searched recursively for png, jpg, bmp, tiff, webp) or quoted
    /// glob patterns such as 'line3/**/*.png'.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// An ONNX graph written by `dlvp export` (default: the embedded demo model).
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Folder for overlays, maps and masks (nothing is written without it).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Label images with score ≥ T anomalous, and write masks of the map ≥ T.
    #[arg(long)]
    threshold: Option<f32>,
    /// Outline the Top-K patches SLFS selected on the overlay.
    #[arg(long)]
    show_topk: bool,
    /// Refuse images of more pixels than this, from their header (decompression bombs).
    #[arg(long, default_value_t = dlvp_runtime::preprocess::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// Images per model run.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch: u32,
    /// One JSON object per image on stdout.
    #[arg(long)]
    json: bool,
}

fn collect(paths: &[PathBuf], failed: &mut bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            match dlvp_eval::dataset::images_under(path) {
                Ok(found) => out.extend(found),
                Err(e) => {
                    eprintln!("error: {e}");
                    *failed = true;
                }
            }
        } else if path.exists() {
            out.push(path.clone());
        } else if let Some(pattern) = path.to_str().filter(|p| p.contains(['*', '?', '['])) {
            // A glob the shell did not expand (quoted, or from a script): `**` recurses.
            match glob::glob(pattern) {
                Ok(matches) => {
                    let mut found: Vec<PathBuf> = matches
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file() && is_image(p))
                        .collect();
                    found.sort();
                    if found.is_empty() {
                        eprintln!("error: {pattern}: the pattern matches no image");
                        *failed = true;
                    }
                    out.extend(found);
                }
                Err(e) => {
                    eprintln!("error: {pattern}: bad glob pattern: {e}");
                    *failed = true;
                }
            }
        } else {
            eprintln!("error: {}: no such file or folder", path.display());
            *failed = true;
        }
    }
    out
}

/// A file stem unique within this run (`part`, `part-1`, ...).
fn unique_stem(path: &Path, used: &mut HashSet<String>) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let mut candidate = stem.clone();
    let mut n = 0;
    while !used.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{stem}-{n}");
    }
    candidate
}

pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    let files = collect(&args.paths, &mut failed);
    if files.is_empty() {
        anyhow::bail!("no images to score");
    }
    let model = crate::cli::resolve_model(args.model.as_deref());
    let detector = load_detector(&model, &args.run, args.batch)?;
    let provider = detector.executor();
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)
            .with_context(|| format!("{}: cannot create folder", out.display()))?;
    }
    let mut used = HashSet::new();
    let mut progress = Progress::new(files.len());
    // Decoding runs on its own thread, a batch or two ahead of the model.
    let (sender, batches) =
        std::sync::mpsc::sync_channel::<Vec<(PathBuf, Result<RgbImage, String>)>>(2);
    let batch_size = args.batch as usize;
    let to_decode = files.clone();
    let max_pixels = args.max_pixels;
    let decoder = std::thread::spawn(move || {
        for chunk in to_decode.chunks(batch_size) {
            let decoded = chunk
                .iter()
                .map(|p| {
                    (
                        p.clone(),
                        load_rgb8_limited(p, max_pixels).map_err(crate::cli::image_error),
                    )
                })
                .collect();
            if sender.send(decoded).is_err() {
                break; // the model side stopped
            }
        }
    });
    for decoded in batches {
        let count = decoded.len();
        progress.clear();
        let mut images: Vec<(PathBuf, RgbImage)> = Vec::new();
        for (path, result) in decoded {
            match result {
                Ok(img) => images.push((path, img)),
                Err(e) => {
                    eprintln!("error: {e}");
                    failed = true;
                }
            }
        }
        if images.is_empty() {
            progress.advance(count);
            continue;
        }
        let rgb: Vec<&RgbImage> = images.iter().map(|(_, img)| img).collect();
        let detections = detector.detect_batch(&rgb)?;
        for ((path, img), det) in images.iter().zip(detections) {
            let label = args.threshold.map(|t| {
                if det.score >= t {
                    "anomalous"
                } else {
                    "normal"
                }
            });
            let mut written = serde_json::Map::new();
            if let Some(out) = &args.out {
                let stem = unique_stem(path, &mut used);
                let full = resize_map(&det.map, img.width() as usize, img.height() as usize);
                let overlay_path = out.join(format!("{stem}.overlay.png"));
                let mut heat = overlay(img, &full);
                if args.show_topk {
                    draw_topk(&mut heat, &det.topk, detector.info().spec.grid());
                }
                write_atomically(&overlay_path, &png_bytes(heat)?)?;
                let map_path = out.join(format!("{stem}.map.png"));
                write_atomically(&map_path, &png_bytes(map_u16(&full))?)?;
                written.insert("overlay".into(), overlay_path.display().to_string().into());
                written.insert("map".into(), map_path.display().to_string().into());
                if let Some(t) = args.threshold {
                    let mask_path = out.join(format!("{stem}.mask.png"));
                    write_atomically(&mask_path, &png_bytes(mask(&full, t))?)?;
                    written.insert("mask".into(), mask_path.display().to_string().into());
                }
            }
            if args.json {
                let mut line = serde_json::json!({
                    "image": path.display().to_string(),
                    "score": det.score,
                    "topk": det.topk,
                    "backend": detector.backend().name(),
                    "provider": provider,
                });
                let obj = line.as_object_mut().expect("an object");
                if let Some(l) = label {
                    obj.insert("label".into(), l.into());
                }
                obj.extend(written);
                println!("{line}");
            } else {
                println!(
                    "{}  score {:.4}{}",
                    path.display(),
                    det.score,
                    label.map(|l| format!("  {l}")).unwrap_or_default()
                );
            }
        }
        progress.advance(count);
    }
    progress.finish();
    decoder
        .join()
        .map_err(|_| anyhow::anyhow!("the image decoding thread panicked"))?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
