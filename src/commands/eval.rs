//! `dlvp eval --data ROOT [--layout mvtec|visa] [--categories ...] [--model M] [--backend B] [--out DIR]`:
//! scores a dataset's test images and reports image AUROC / AP / F1-max, pixel AUROC / AP and
//! AUPRO per category and on average, with plots, per-image scores and an HTML report.
//!
//! Pixel metrics compare the model's map at its own H×W with the ground-truth mask resized to
//! H×W (nearest neighbour, binarised at 128), as the reference's data loader does. Memory stays
//! bounded: pixel maps are folded into fixed histograms (`dlvp_eval::pixels`), only one score
//! per image is kept, and the overlays of the worst-ranked images are recomputed at the end.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use dlvp_eval::dataset::{self, Layout, Sample};
use dlvp_eval::metrics::{Curve, Groups};
use dlvp_eval::pixels::PixelAccumulator;
use dlvp_eval::plot::{self, PALETTE};
use dlvp_eval::report::{
    self, CategoryReport, Figure, ImageScore, Metrics, PixelIntervals, Report, Worst,
};
use dlvp_runtime::detector::Detector;
use dlvp_runtime::postprocess::overlay;
use dlvp_runtime::preprocess::{load_rgb8_limited, resize_rgb8};
use image::{Rgb, RgbImage};

use super::progress::Progress;
use super::{load_detector, png_bytes, write_atomically, RunArgs};

#[derive(Clone, Copy, ValueEnum)]
pub enum LayoutArg {
    Mvtec,
    Visa,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Dataset root (MVTec AD: <cat>/test/<defect>/, <cat>/ground_truth/; VisA: split_csv/1cls.csv).
    #[arg(long)]
    data: PathBuf,
    #[arg(long, value_enum, default_value_t = LayoutArg::Mvtec)]
    layout: LayoutArg,
    /// Categories to evaluate (default: every category found).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    categories: Vec<String>,
    /// An ONNX graph written by `dlvp export` (default: the embedded demo model).
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
    /// Folder for metrics.json, metrics.csv, scores.csv, the plots and report.html.
    #[arg(long, default_value = "out/eval")]
    out: PathBuf,
    /// Refuse images of more pixels than this, from their header (decompression bombs).
    #[arg(long, default_value_t = dlvp_runtime::preprocess::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// Images per model run.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch: u32,
    /// Worst-ranked images per category and class shown in the report.
    #[arg(long, default_value_t = 3)]
    worst: usize,
}

/// The ground truth at the map's resolution: nearest neighbour, foreground ≥ 128.
fn load_mask(path: &Path, size: usize) -> anyhow::Result<Vec<bool>> {
    let img = image::ImageReader::open(path)
        .with_context(|| format!("{}: cannot open mask", path.display()))?
        .with_guessed_format()?
        .decode()
        .with_context(|| format!("{}: cannot decode mask", path.display()))?
        .to_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        anyhow::bail!("{}: the mask is empty ({w}×{h})", path.display());
    }
    let mut out = vec![false; size * size];
    for y in 0..size {
        let sy = (((y as f64 + 0.5) * h as f64 / size as f64) as usize).min(h - 1);
        for x in 0..size {
            let sx = (((x as f64 + 0.5) * w as f64 / size as f64) as usize).min(w - 1);
            out[y * size + x] = img.get_pixel(sx as u32, sy as u32).0[0] >= 128;
        }
    }
    Ok(out)
}

/// Curves of one category, thinned for plotting.
struct CategoryCurves {
    roc: Option<Curve>,
    pr: Option<Curve>,
    pixel_roc: Option<Curve>,
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let layout = match args.layout {
        LayoutArg::Mvtec => Layout::Mvtec,
        LayoutArg::Visa => Layout::Visa,
    };
    let categories = dataset::load(&args.data, layout, &args.categories)?;
    let model = super::resolve_model(args.model.as_deref());
    let detector = load_detector(&model, &args.run, args.batch)?;
    let size = detector.info().spec.image_size;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create folder", args.out.display()))?;

    let total: usize = categories.iter().map(|c| c.samples.len()).sum();
    let mut progress = Progress::new(total);
    let mut failed = false;
    let mut reports = Vec::new();
    let mut all_scores: Vec<ImageScore> = Vec::new();
    let mut curves = Vec::new();
    let mut worst = Vec::new();
    let mut pixels = PixelAccumulator::default();
    for cat in &categories {
        for w in &cat.warnings {
            progress.clear();
            eprintln!("warning: {w}");
        }
        pixels.reset();
        let mut scored: Vec<(&Sample, f32)> = Vec::new();
        let mut pixel_images = 0;
        for chunk in cat.samples.chunks(args.batch as usize) {
            let mut batch: Vec<(&Sample, RgbImage)> = Vec::new();
            for sample in chunk {
                match load_rgb8_limited(&sample.image, args.max_pixels) {
                    Ok(img) => batch.push((sample, img)),
                    Err(e) => {
                        progress.clear();
                        eprintln!("error: {e}; left out");
                        failed = true;
                    }
                }
            }
            let images: Vec<&RgbImage> = batch.iter().map(|(_, img)| img).collect();
            let detections = if images.is_empty() {
                Vec::new()
            } else {
                detector.detect_batch(&images)?
            };
            for ((sample, _), det) in batch.iter().zip(detections) {
                if !det.score.is_finite() || det.map.iter().any(|v| !v.is_finite()) {
                    progress.clear();
                    eprintln!(
                        "error: {}: the model produced a non-finite score or map; left out",
                        sample.image.display()
                    );
                    failed = true;
                    continue;
                }
                scored.push((sample, det.score));
                let mask = match (&sample.mask, sample.anomalous) {
                    (Some(m), _) => match load_mask(m, size) {
                        Ok(mask) => Some(mask),
                        Err(e) => {
                            progress.clear();
                            eprintln!(
                                "warning: {e:#}; {} left out of the pixel metrics",
                                sample.image.display()
                            );
                            None
                        }
                    },
                    (None, false) => Some(vec![false; size * size]),
                    (None, true) => None, // listed as a warning already
                };
                if let Some(mask) = mask {
                    let map = det.map.as_standard_layout();
                    pixels.add(map.as_slice().expect("standard layout"), &mask, size, size);
                    pixel_images += 1;
                }
            }
            progress.advance(chunk.len());
        }

        let scores: Vec<f32> = scored.iter().map(|(_, s)| *s).collect();
        let labels: Vec<bool> = scored.iter().map(|(s, _)| s.anomalous).collect();
        let groups = Groups::from_scores(&scores, &labels);
        let metrics = Metrics {
            image_auroc: groups.auroc(),
            image_ap: groups.average_precision(),
            image_f1_max: groups.f1_max(),
            pixel_auroc: pixels.auroc(),
            pixel_ap: pixels.average_precision(),
            aupro: pixels.aupro(),
        };
        let mut warnings = cat.warnings.clone();
        let [auroc_range, ap_range, aupro_range] = pixels.intervals();
        let pixel_intervals = PixelIntervals {
            pixel_auroc: auroc_range,
            pixel_ap: ap_range,
            aupro: aupro_range,
        };
        for (what, range) in [
            ("pixel AUROC", auroc_range),
            ("pixel AP", ap_range),
            ("AUPRO", aupro_range),
        ] {
            if let Some([lo, hi]) = range.filter(|[lo, hi]| hi - lo > 1e-3) {
                warnings.push(format!(
                    "{}: {what} is only known within [{lo:.4}, {hi:.4}] (histogram binning)",
                    cat.name
                ));
            }
        }
        let anomalous = labels.iter().filter(|&&l| l).count();
        if !scored.is_empty() && (anomalous == 0 || anomalous == scored.len()) {
            warnings.push(format!(
                "{}: only {} images; image metrics undefined",
                cat.name,
                if anomalous == 0 {
                    "normal"
                } else {
                    "anomalous"
                }
            ));
        }
        if pixels.regions() == 0 && !scored.is_empty() {
            warnings.push(format!(
                "{}: no ground-truth defect pixels; pixel metrics undefined",
                cat.name
            ));
        }
        for w in warnings.iter().skip(cat.warnings.len()) {
            progress.clear();
            eprintln!("warning: {w}");
        }
        curves.push(CategoryCurves {
            roc: groups.roc().map(|c| c.thinned(2000)),
            pr: groups.pr().map(|c| c.thinned(2000)),
            pixel_roc: pixels.roc().map(|c| c.thinned(2000)),
        });
        worst.extend(worst_overlays(
            &detector, &cat.name, &scored, args.worst, size,
        )?);
        all_scores.extend(scored.iter().map(|(s, score)| ImageScore {
            category: cat.name.clone(),
            defect: s.defect.clone(),
            anomalous: s.anomalous,
            score: *score,
            image: s.image.display().to_string(),
        }));
        reports.push(CategoryReport {
            name: cat.name.clone(),
            images: scored.len(),
            anomalous,
            pixel_images,
            metrics,
            pixel_intervals,
            warnings,
        });
    }
    progress.finish();

    let (mean, mean_over) = Metrics::mean(&reports.iter().map(|r| &r.metrics).collect::<Vec<_>>());
    let report = Report {
        model: model.label(),
        backend: detector.backend().to_string(),
        provider: super::provider_name(&detector).to_string(),
        data: args.data.display().to_string(),
        layout: match layout {
            Layout::Mvtec => "mvtec",
            Layout::Visa => "visa",
        }
        .into(),
        map_size: size,
        categories: reports,
        mean,
        mean_over,
        seconds: started.elapsed().as_secs_f64(),
    };
    let figures = figures(&report, &curves)?;
    let out = &args.out;
    write_atomically(&out.join("metrics.json"), report.to_json().as_bytes())?;
    write_atomically(&out.join("metrics.csv"), report.to_csv().as_bytes())?;
    write_atomically(
        &out.join("scores.csv"),
        Report::scores_csv(&all_scores).as_bytes(),
    )?;
    for (name, f) in ["roc.png", "pr.png", "pixel_roc.png"].iter().zip(&figures) {
        write_atomically(&out.join(name), &f.png)?;
    }
    write_atomically(
        &out.join("report.html"),
        report::to_html(&report, &figures, &worst).as_bytes(),
    )?;
    print!("{}", report.to_markdown());
    eprintln!(
        "wrote {}/{{metrics.json,metrics.csv,scores.csv,roc.png,pr.png,pixel_roc.png,report.html}}",
        out.display()
    );
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn figures(report: &Report, curves: &[CategoryCurves]) -> anyhow::Result<Vec<Figure>> {
    let mut out = Vec::new();
    type Pick = fn(&CategoryCurves) -> &Option<Curve>;
    let kinds: [(&str, &str, Pick, bool); 3] = [
        (
            "Image ROC",
            "x: false-positive rate, y: true-positive rate (0 to 1, grid every 0.2)",
            |c| &c.roc,
            true,
        ),
        (
            "Image precision–recall",
            "x: recall, y: precision (0 to 1, grid every 0.2)",
            |c| &c.pr,
            false,
        ),
        (
            "Pixel ROC",
            "x: false-positive rate, y: true-positive rate (0 to 1, grid every 0.2)",
            |c| &c.pixel_roc,
            true,
        ),
    ];
    for (title, axes, pick, diagonal) in kinds {
        let mut series = Vec::new();
        let mut legend = Vec::new();
        for (i, (cat, c)) in report.categories.iter().zip(curves).enumerate() {
            if let Some(curve) = pick(c) {
                let colour = PALETTE[i % PALETTE.len()];
                series.push((curve, colour));
                legend.push((cat.name.clone(), colour));
            }
        }
        out.push(Figure {
            title: title.into(),
            axes: axes.into(),
            png: png_bytes(plot::curves(&series, 320, diagonal))?,
            legend,
        });
    }
    Ok(out)
}

/// Overlays (at the map's resolution, ground truth outlined in white) of the normal images
/// scored highest and the anomalous ones scored lowest.
fn worst_overlays(
    detector: &Detector,
    category: &str,
    scored: &[(&Sample, f32)],
    n: usize,
    size: usize,
) -> anyhow::Result<Vec<Worst>> {
    let mut normal: Vec<&(&Sample, f32)> = scored.iter().filter(|(s, _)| !s.anomalous).collect();
    let mut anomalous: Vec<&(&Sample, f32)> = scored.iter().filter(|(s, _)| s.anomalous).collect();
    normal.sort_by(|a, b| b.1.total_cmp(&a.1));
    anomalous.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut out = Vec::new();
    for (sample, score) in normal
        .into_iter()
        .take(n)
        .chain(anomalous.into_iter().take(n))
    {
        // Scored images already passed --max-pixels.
        let Ok(img) = load_rgb8_limited(&sample.image, u64::MAX) else {
            continue;
        };
        let det = detector.detect(&image::DynamicImage::ImageRgb8(img.clone()))?;
        let small = resize_rgb8(&img, size, size, detector.info().spec.preprocess.resize);
        let mut heat = overlay(&small, &det.map);
        if let Some(mask) = sample.mask.as_ref().and_then(|m| load_mask(m, size).ok()) {
            outline(&mut heat, &mask, size);
        }
        let name = sample
            .image
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let what = if sample.anomalous {
            format!("{} (missed?)", sample.defect)
        } else {
            "good (false alarm?)".into()
        };
        out.push(Worst {
            category: category.into(),
            caption: format!("{}/{name}: {what}, score {score:.4}", sample.defect),
            png: png_bytes(heat)?,
        });
    }
    Ok(out)
}

fn outline(img: &mut RgbImage, mask: &[bool], size: usize) {
    let at = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < size
            && (y as usize) < size
            && mask[y as usize * size + x as usize]
    };
    let edge: Vec<(u32, u32)> = (0..size as isize)
        .flat_map(|y| (0..size as isize).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            at(x, y) && !(at(x - 1, y) && at(x + 1, y) && at(x, y - 1) && at(x, y + 1))
        })
        .map(|(x, y)| (x as u32, y as u32))
        .collect();
    for (x, y) in edge {
        img.put_pixel(x, y, Rgb([255, 255, 255]));
    }
}
