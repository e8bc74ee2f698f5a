//! `dlvp detect PATH... --model M [--backend B] [--out DIR] [--threshold T] [--show-topk] [--batch N] [--json]`.
//!
//! Scores images (files, or directories searched recursively) with a dlvp graph and, when the
//! graph holds thresholds (`dlvp threshold`) or `--threshold` gives one, decides OK/NG
//! (`dlvp_runtime::decision`); with `--out`, writes per image a heatmap overlay (anchored on the
//! pixel threshold when there is one), the map as a 16-bit PNG at the image's size and, with a
//! threshold, a binary mask — each written atomically, named after the image's path relative to
//! the argument that found it (`cli::inputs`; the output folder itself is never scored). A bad
//! image or a path that names nothing is reported — with `--json`, as a record with an `error` —
//! and skipped; the exit status is then 1 (else 2 with `--fail-on-ng` when any image is NG).
//! Whole-image runs warn about images they distort (far from square, tiny). The work runs on
//! `dlvp_runtime::pipeline`: decoding, the graph and the PNG encoding overlap; files are written
//! and lines printed in file order on this thread.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use dlvp_runtime::decision::{Decider, Origin, OverlayScale, Verdict};
use dlvp_runtime::pipeline::{self, PipelineOptions, Scored};
use dlvp_runtime::postprocess::{
    draw_topk, map_u16, mask, overlay_scaled, png_bytes_with, resize_map, PngEncoding,
};
use dlvp_runtime::preprocess::ImageError;
use dlvp_runtime::tiling::TileResult;
use dlvp_runtime::Detection;

use crate::cli::inputs::{self, output_file, output_names};
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
    /// What --out writes per image, comma-separated: `overlay` (the heatmap on the image),
    /// `map` (16-bit PNG), `mask` (needs a threshold). Default: overlay and map, and the mask
    /// when there is a threshold. Each costs its own encoding: on 5 MP images write only what
    /// you look at.
    #[arg(long, requires = "out", value_delimiter = ',', value_enum)]
    write: Vec<Written>,
    /// Decide with this threshold instead of the graph's: NG when the score is above T; masks
    /// where the map is above T (unless --pixel-threshold). Without it, a graph calibrated by
    /// `dlvp threshold` decides with its stored thresholds. A number in [0, 1).
    #[arg(long, value_name = "T", value_parser = crate::cli::parsers::threshold_value, allow_hyphen_values = true)]
    threshold: Option<f32>,
    /// Masks (and the overlay's colour change) where the map is above P, instead of the stored
    /// pixel threshold or --threshold. A number in [0, 1).
    #[arg(long, value_name = "P", value_parser = crate::cli::parsers::threshold_value, allow_hyphen_values = true)]
    pixel_threshold: Option<f32>,
    /// Exit with status 2 when any image is NG (status 1, for an unreadable image, comes first).
    #[arg(long)]
    fail_on_ng: bool,
    /// Outline the Top-K patches SLFS selected on the overlay (whole images; with --tile each
    /// tile's Top-K is in the JSON instead).
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
    /// How overlays, maps and masks are PNG-encoded: `compact` (smallest files) or `fast` (the
    /// same pixels in about half the encoding time, files about a third larger).
    #[arg(long, default_value = "compact", value_parser = crate::cli::named_values(&PngEncoding::ALL))]
    png: PngEncoding,
    /// Decode JPEGs at 1/2, 1/4 or 1/8 scale in the DCT domain when still at least the model's
    /// input size (Pillow's `draft`): several times faster on multi-megapixel frames, but the
    /// pixels differ from the full decode, so scores move (demo model, 5 MP JPEGs: 0.005 on
    /// average, up to 0.04; outside the Pillow parity). Calibrate thresholds the same way.
    #[arg(long, conflicts_with = "tile")]
    jpeg_draft: bool,
    #[command(flatten)]
    tiles: crate::cli::TileArgs,
    /// At the end, print images/s and the milliseconds per image of each stage (decode, resize,
    /// infer, finish: overlays, PNG encoding and writing, deliver: printing) to stderr.
    #[arg(long)]
    profile: bool,
}

/// A file `--out` writes per image.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Written {
    Overlay,
    Map,
    Mask,
}

/// One scored image after the finishers: its detection and the files written for it.
struct Finished {
    detection: Detection,
    written: serde_json::Map<String, serde_json::Value>,
    /// With --tile: every tile's place, score and Top-K.
    tiles: Option<Vec<TileResult>>,
    /// What a whole-image run did to it that its score should be read with (`shape_warning`).
    warning: Option<String>,
}

/// What `--out` writes for each image, and how.
struct Writer<'a> {
    out: &'a Path,
    kinds: &'a [Written],
    decider: Option<Decider>,
    scale: OverlayScale,
    png: PngEncoding,
}

impl Writer<'_> {
    /// Writes the files asked for of image `img` (from `source`) and its map `full` at its size,
    /// atomically, as `NAME.KIND.png` under the output folder (`inputs::output_names`: the
    /// image's path relative to its argument); `topk` (with the patch grid) is outlined on the
    /// overlay.
    fn write(
        &self,
        name: &Path,
        source: &Path,
        img: &image::RgbImage,
        full: &ndarray::Array2<f32>,
        topk: Option<(&[i64], usize)>,
    ) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
        let mut written = serde_json::Map::new();
        // In overlay, map, mask order, whatever order --write named them in.
        let mut files = vec![];
        if self.kinds.contains(&Written::Overlay) {
            let mut heat = overlay_scaled(img, full, self.scale);
            if let Some((topk, grid)) = topk {
                draw_topk(&mut heat, topk, grid);
            }
            files.push(("overlay", png_bytes_with(heat, self.png)));
        }
        if self.kinds.contains(&Written::Map) {
            files.push(("map", png_bytes_with(map_u16(full), self.png)));
        }
        if let (true, Some(d)) = (self.kinds.contains(&Written::Mask), &self.decider) {
            files.push(("mask", png_bytes_with(mask(full, d.pixel), self.png)));
        }
        for (kind, png) in files {
            let png = png.with_context(|| format!("{}: cannot encode PNG", source.display()))?;
            let path = output_file(self.out, name, kind);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("{}: cannot create folder", parent.display()))?;
            }
            write_atomically(&path, &png)?;
            written.insert(kind.into(), path.display().to_string().into());
        }
        Ok(written)
    }
}

pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    // Never the output folder: a second run over a folder holding its outputs scores only parts.
    let listed = inputs::expand(&args.paths, args.out.as_deref());
    if let (false, Some(out)) = (listed.skipped.is_empty(), &args.out) {
        eprintln!(
            "note: {} image(s) under the output folder {} not scored (dlvp never scores its own outputs)",
            listed.skipped.len(),
            out.display()
        );
    }
    // Every argument gets a record: a JSON line with its error, beside the message.
    for p in &listed.problems {
        eprintln!("error: {p}");
        if args.json {
            println!("{}", error_record(&p.path, &p.to_string()));
        }
    }
    let mut failed = !listed.problems.is_empty();
    if listed.files.is_empty() {
        let skipped = match (listed.skipped.len(), &args.out) {
            (0, _) | (_, None) => String::new(),
            (n, Some(out)) => format!(
                " ({n} under the output folder {} are never scored)",
                out.display()
            ),
        };
        anyhow::bail!(
            "no images to score in {}{skipped}",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // Predictable output names, checked before anything is scored: never a silent rename.
    let names = match &args.out {
        Some(_) => output_names(&listed.files)?,
        None => vec![],
    };
    let files: Vec<PathBuf> = listed.files.into_iter().map(|f| f.path).collect();
    let model = crate::cli::resolve_model(args.model.as_deref());
    let detector = load_detector(&model, &args.run, args.batch)?;
    let provider = detector.executor();
    let decider = Decider::resolve(
        detector.info().thresholds.as_ref(),
        args.threshold,
        args.pixel_threshold,
    )?;
    if decider.is_none() && (args.fail_on_ng || args.pixel_threshold.is_some()) {
        let flag = if args.fail_on_ng {
            "--fail-on-ng"
        } else {
            "--pixel-threshold"
        };
        anyhow::bail!(
            "{flag} needs an image threshold: {} has none stored (calibrate one with `dlvp threshold`) and --threshold is not given",
            model.label()
        );
    }
    let scale = decider.map_or(OverlayScale::Raw, |d| d.overlay_scale());
    let kinds: Vec<Written> = if args.write.is_empty() {
        let mut kinds = vec![Written::Overlay, Written::Map];
        kinds.extend(decider.map(|_| Written::Mask));
        kinds
    } else {
        args.write.clone()
    };
    if kinds.contains(&Written::Mask) && decider.is_none() {
        anyhow::bail!(
            "--write mask needs a threshold: {} has none stored (calibrate one with `dlvp threshold`) and --threshold is not given",
            model.label()
        );
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)
            .with_context(|| format!("{}: cannot create folder", out.display()))?;
    }
    let tiling = args.tiles.options()?;
    // A threshold holds for images cut as its calibration cut them.
    if let (
        Some(stored),
        Some(Decider {
            origin: Origin::Model { .. },
            ..
        }),
    ) = (detector.info().thresholds.as_ref(), &decider)
    {
        if stored.tiling != tiling {
            let describe = |t: Option<&dlvp_runtime::tiling::TileOptions>| match t {
                Some(t) => format!("tiled ({})", t.describe()),
                None => "whole images resized".to_string(),
            };
            eprintln!(
                "warning: {}'s thresholds were calibrated on {}, this run scores {}: its false-alarm rate is not the one stated (calibrate with the same --tile options)",
                model.label(),
                describe(stored.tiling.as_ref()),
                describe(tiling.as_ref())
            );
        }
    }
    let writer = args.out.as_deref().map(|out| Writer {
        out,
        kinds: &kinds,
        decider,
        scale,
        png: args.png,
    });
    let grid = detector.info().spec.grid();
    let input_size = detector.info().spec.image_size;
    // Tiled, each image is its own work item and --batch counts its tiles per graph run.
    let options = PipelineOptions {
        keep_images: args.out.is_some(),
        jpeg_draft: args.jpeg_draft,
        tiling,
        ..PipelineOptions::new(args.batch as usize, args.max_pixels)
    };
    // On the inference thread, in file order: each image's output name.
    let name = |index: usize, _: &Path| names.get(index).cloned().unwrap_or_default();
    // On the finisher threads: the map at the image's size, the overlay and mask, encoded and
    // written.
    let finish = |scored: Scored<PathBuf>| -> anyhow::Result<Finished> {
        let mut written = serde_json::Map::new();
        if let (Some(writer), Some(img)) = (&writer, &scored.image) {
            let det = &scored.detection;
            let (w, h) = (img.width() as usize, img.height() as usize);
            // A tiled map is at the image's size already.
            let resized;
            let full = if det.map.dim() == (h, w) {
                &det.map
            } else {
                resized = resize_map(&det.map, w, h);
                &resized
            };
            // Whole-image Top-K only: a tiled image's are per tile, in the JSON.
            let topk =
                (args.show_topk && scored.tiles.is_none()).then_some((det.topk.as_slice(), grid));
            written = writer.write(&scored.label, scored.path, img, full, topk)?;
        }
        Ok(Finished {
            detection: scored.detection,
            written,
            warning: scored
                .tiles
                .is_none()
                .then(|| shape_warning(scored.size, input_size))
                .flatten(),
            tiles: scored.tiles,
        })
    };
    let mut progress = Progress::new(files.len());
    let mut stopped = None;
    let mut counts = [0usize; 2];
    // On this thread, in file order: the lines printed.
    let deliver = |_: usize, path: &Path, result: Result<anyhow::Result<Finished>, ImageError>| {
        progress.clear();
        let outcome = match result {
            Err(e) => {
                let message = crate::cli::image_error(e);
                eprintln!("error: {message}");
                if args.json {
                    println!("{}", error_record(path, &message));
                }
                failed = true;
                Ok(())
            }
            Ok(finished) => finished.map(|f| {
                if let Some(w) = &f.warning {
                    eprintln!("warning: {}: {w}", path.display());
                }
                let verdict = decider.map(|d| d.verdict(f.detection.score));
                if let Some(v) = verdict {
                    counts[(v == Verdict::Ng) as usize] += 1;
                }
                report(
                    &args,
                    path,
                    f,
                    verdict,
                    decider.as_ref(),
                    &provider,
                    &detector,
                )
            }),
        };
        progress.advance(1);
        outcome.map_err(|e| stopped = Some(e)).is_ok()
    };
    let times = pipeline::run(&detector, &files, &options, name, finish, deliver)?;
    let profile = format!("{times} ({options})");
    progress.finish();
    if let Some(e) = stopped {
        return Err(e);
    }
    if args.profile {
        eprintln!("profile: {profile}");
    }
    if let (Some(d), false) = (&decider, args.json) {
        eprintln!("{}", summary(d, counts));
    }
    Ok(if failed {
        ExitCode::from(1)
    } else if args.fail_on_ng && counts[1] > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The JSON line of an input that could not be scored: its path and the error printed for it
/// (docs/cli.md, "The per-image record").
fn error_record(path: &Path, message: &str) -> serde_json::Value {
    serde_json::json!({
        "image": path.display().to_string(),
        "error": message,
    })
}

/// What a whole-image run does to an image of this size that its score should be read with: a
/// frame far from square is squashed, a tiny one blown up, to the graph's `input`×`input`.
fn shape_warning((w, h): (u32, u32), input: usize) -> Option<String> {
    let (long, short) = (w.max(h) as f64, w.min(h).max(1) as f64);
    let side = input as f64;
    if long / short > MAX_ASPECT {
        Some(format!(
            "{w}×{h} is squashed {:.1}× along its {} to the graph's {input}×{input}: score it in tiles (--tile) to keep its detail",
            long / short,
            if w > h { "width" } else { "height" }
        ))
    } else if short * MAX_ENLARGEMENT < side {
        Some(format!(
            "{w}×{h} is enlarged {:.1}× to the graph's {input}×{input}: the model sees little of it, so its score means little",
            side / short
        ))
    } else {
        None
    }
}

/// A whole-image run warns beyond these (`shape_warning`): a side more than twice the other, an
/// image enlarged more than 4×.
const MAX_ASPECT: f64 = 2.0;
const MAX_ENLARGEMENT: f64 = 4.0;

/// The run's decisions and where their threshold came from, for a person.
fn summary(decider: &Decider, [ok, ng]: [usize; 2]) -> String {
    let source = match decider.origin {
        Origin::Model {
            false_alarm,
            images,
        } => format!(
            "the model's, calibrated on {images} good images for a false-alarm rate of at most {false_alarm}"
        ),
        Origin::Given => "--threshold".into(),
    };
    format!(
        "decisions: {ok} OK, {ng} NG (NG: score above {}, {source}; masks above {})",
        decider.image, decider.pixel
    )
}

/// Prints one scored image's line.
fn report(
    args: &DetectArgs,
    path: &Path,
    finished: Finished,
    verdict: Option<Verdict>,
    decider: Option<&Decider>,
    provider: &str,
    detector: &dlvp_runtime::Detector,
) {
    let det = finished.detection;
    if args.json {
        let mut line = serde_json::json!({
            "image": path.display().to_string(),
            "score": det.score,
            "topk": det.topk,
            "backend": detector.backend().name(),
            "provider": provider,
        });
        let obj = line.as_object_mut().expect("an object");
        if let (Some(v), Some(d)) = (verdict, decider) {
            obj.insert("decision".into(), v.name().into());
            obj.insert("threshold".into(), d.image.into());
            // The older field, kept for scripts that read it.
            obj.insert("label".into(), v.label().into());
        }
        obj.extend(finished.written);
        if let Some(w) = finished.warning {
            obj.insert("warnings".into(), vec![w].into());
        }
        if let Some(tiles) = &finished.tiles {
            let tiles: Vec<serde_json::Value> = tiles
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "x": t.x, "y": t.y, "side": t.side, "score": t.score, "topk": t.topk,
                    })
                })
                .collect();
            obj.insert("tiles".into(), tiles.into());
        }
        println!("{line}");
    } else {
        println!(
            "{}  score {:.4}{}",
            path.display(),
            det.score,
            verdict.map(|v| format!("  {v}")).unwrap_or_default()
        );
    }
}
