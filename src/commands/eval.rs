//! `dlvp eval --data ROOT [--layout mvtec|visa] [--categories ...] [--model M] [--backend B] [--out DIR]`:
//! scores a dataset's test images and reports image AUROC / AP / F1-max, pixel AUROC / AP and
//! AUPRO per category and on average, with plots, per-image scores and an HTML report.
//!
//! The per-category work (scoring, metrics, warnings, curves) is `dlvp_eval::evaluate`, with the
//! detector as its scorer; this command adds the progress line, the report files and the overlays
//! of the worst-ranked images, recomputed at the end. Memory stays bounded: pixel maps are folded
//! into fixed histograms (`dlvp_eval::pixels`) and only one score per image is kept.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use dlvp_eval::dataset::{self, Layout, Sample};
use dlvp_eval::evaluate::{evaluate_category, load_mask, CategoryCurves, Event, ScoredMap, Scorer};
use dlvp_eval::metrics::Curve;
use dlvp_eval::pixels::PixelAccumulator;
use dlvp_eval::plot::{self, PALETTE};
use dlvp_eval::report::{self, Figure, ImageScore, Metrics, Report, Worst};
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
    pub run: RunArgs,
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

/// The detector as `dlvp_eval`'s scorer: images decoded within `--max-pixels`.
struct DetectorScorer<'a> {
    detector: &'a Detector,
    max_pixels: u64,
}

impl Scorer for DetectorScorer<'_> {
    fn map_size(&self) -> usize {
        self.detector.info().spec.image_size
    }

    fn load(&self, path: &Path) -> Result<RgbImage, String> {
        load_rgb8_limited(path, self.max_pixels).map_err(|e| e.to_string())
    }

    fn score(
        &self,
        images: &[&RgbImage],
    ) -> Result<Vec<ScoredMap>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self
            .detector
            .detect_batch(images)?
            .into_iter()
            .map(|d| ScoredMap {
                score: d.score,
                map: d.map.iter().copied().collect(),
            })
            .collect())
    }
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
    let scorer = DetectorScorer {
        detector: &detector,
        max_pixels: args.max_pixels,
    };
    for cat in &categories {
        let result = evaluate_category(
            cat,
            &scorer,
            args.batch as usize,
            &mut pixels,
            &mut |event| match event {
                Event::Warning(w) => {
                    progress.clear();
                    eprintln!("warning: {w}");
                }
                Event::Error(e) => {
                    progress.clear();
                    eprintln!("error: {e}");
                }
                Event::Progress(n) => progress.advance(n),
            },
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        failed |= result.failed;
        curves.push(result.curves);
        worst.extend(worst_overlays(
            &detector,
            &cat.name,
            &result.scored,
            args.worst,
            size,
        )?);
        all_scores.extend(result.scored.iter().map(|(s, score)| ImageScore {
            category: cat.name.clone(),
            defect: s.defect.clone(),
            anomalous: s.anomalous,
            score: *score,
            image: s.image.display().to_string(),
        }));
        reports.push(result.report);
    }
    progress.finish();

    let (mean, mean_over) = Metrics::mean(&reports.iter().map(|r| &r.metrics).collect::<Vec<_>>());
    let report = Report {
        model: model.label(),
        backend: detector.backend().to_string(),
        provider: detector.executor(),
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
