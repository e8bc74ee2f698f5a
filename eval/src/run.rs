//! A whole evaluation (`dlvp eval`): every category scored with [`evaluate_category`], the
//! report (metrics per category and their mean), the ROC / PR / pixel-ROC figures, the overlays
//! of the worst-ranked images, and the files written from them (`metrics.json`, `metrics.csv`,
//! `scores.csv`, the three plots, `report.html`), each atomically. The caller brings the scorer
//! and shows the events; memory stays bounded as in [`crate::evaluate`], plus one score per image.

use std::path::{Path, PathBuf};

use dlvp_contract::atomic_write::{write_atomically, AtomicWriteError};
use image::{Rgb, RgbImage};

use crate::dataset::{Category, Layout, Sample};
use crate::decisions::{DecisionRates, DecisionThreshold};
use crate::evaluate::{evaluate_category, load_mask, CategoryCurves, Event, Scorer};
use crate::metrics::Curve;
use crate::pixels::PixelAccumulator;
use crate::plot::{self, PALETTE};
use crate::report::{self, Figure, ImageScore, LeftOut, Metrics, Report, Worst};

/// What the report says about the run, beside the numbers.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// How the report names the model (its path, or the embedded model's name).
    pub model: String,
    /// The backend and what executes on it.
    pub backend: String,
    pub provider: String,
    pub data: PathBuf,
    pub layout: Layout,
    /// A decision threshold to count false alarms and detections at (`None`: no decisions).
    pub decision: Option<DecisionThreshold>,
}

/// How the images are run and how much of the worst is shown.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Images per scorer call.
    pub batch: usize,
    /// Worst-ranked images per category and class shown in the report.
    pub worst: usize,
}

/// An evaluation's outcome, ready to write.
pub struct Evaluation {
    pub report: Report,
    pub figures: Vec<Figure>,
    pub worst: Vec<Worst>,
    pub scores: Vec<ImageScore>,
    /// Whether any image was left out (the command should fail).
    pub failed: bool,
}

/// The files [`Evaluation::write`] writes, in its order.
pub const FILES: [&str; 7] = [
    "metrics.json",
    "metrics.csv",
    "scores.csv",
    "roc.png",
    "pr.png",
    "pixel_roc.png",
    "report.html",
];

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scorer failed (not one image: the model or the backend).
    #[error("{0}")]
    Scorer(Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot encode a figure as PNG")]
    Png(#[from] image::ImageError),
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
}

/// Scores every category of `categories` with `scorer` and builds the report, its figures and
/// the worst-ranked overlays; `events` sees warnings, left-out images and progress as they come.
pub fn evaluate_all(
    categories: &[Category],
    scorer: &dyn Scorer,
    info: &RunInfo,
    options: RunOptions,
    events: &mut dyn FnMut(Event),
) -> Result<Evaluation, RunError> {
    let started = std::time::Instant::now();
    let size = scorer.map_size();
    let mut failed = false;
    let mut reports = Vec::new();
    let mut scores: Vec<ImageScore> = Vec::new();
    let mut curves = Vec::new();
    let mut worst = Vec::new();
    let mut left_out = Vec::new();
    let mut pixels = PixelAccumulator::default();
    let threshold = info.decision.as_ref().map(|d| d.threshold);
    for cat in categories {
        let mut result = evaluate_category(cat, scorer, options.batch, &mut pixels, events)
            .map_err(RunError::Scorer)?;
        if let Some(d) = &info.decision {
            let scored = result.scored.iter().map(|(s, score)| (*score, s.anomalous));
            result.report.decisions = Some(DecisionRates::at(d.threshold, scored));
        }
        failed |= result.failed;
        curves.push(result.curves);
        worst.extend(worst_overlays(
            scorer,
            &cat.name,
            &result.scored,
            options.worst,
            size,
            threshold,
        )?);
        scores.extend(rows(cat, &result.scored, &result.left_out));
        left_out.extend(result.left_out.iter().map(|(s, error)| LeftOut {
            category: cat.name.clone(),
            image: s.image.display().to_string(),
            error: error.clone(),
        }));
        reports.push(result.report);
    }
    let (mean, mean_over) = Metrics::mean(&reports.iter().map(|r| &r.metrics).collect::<Vec<_>>());
    let report = Report {
        model: info.model.clone(),
        backend: info.backend.clone(),
        provider: info.provider.clone(),
        data: info.data.display().to_string(),
        layout: match info.layout {
            Layout::Mvtec => "mvtec",
            Layout::Visa => "visa",
        }
        .into(),
        map_size: size,
        categories: reports,
        mean,
        mean_over,
        seconds: started.elapsed().as_secs_f64(),
        decisions_all: info.decision.as_ref().map(|d| {
            DecisionRates::at(
                d.threshold,
                scores.iter().filter_map(|s| Some((s.score?, s.anomalous))),
            )
        }),
        decision: info.decision.clone(),
        left_out,
    };
    let figures = figures(&report, &curves)?;
    Ok(Evaluation {
        report,
        figures,
        worst,
        scores,
        failed,
    })
}

impl Evaluation {
    /// Writes [`FILES`] into `out` (created if missing), each atomically; returns their paths.
    pub fn write(&self, out: &Path) -> Result<Vec<PathBuf>, RunError> {
        let report = &self.report;
        let mut contents: Vec<Vec<u8>> = vec![
            report.to_json().into_bytes(),
            report.to_csv().into_bytes(),
            Report::scores_csv(&self.scores).into_bytes(),
        ];
        contents.extend(self.figures.iter().map(|f| f.png.clone()));
        contents.push(report::to_html(report, &self.figures, &self.worst).into_bytes());
        let mut written = Vec::new();
        for (name, bytes) in FILES.iter().zip(&contents) {
            let path = out.join(name);
            write_atomically(&path, bytes)?;
            written.push(path);
        }
        Ok(written)
    }
}

/// `scores.csv`'s rows of one category in file order: the scored images and, with an empty
/// score and why, the left-out ones (both lists are in file order, subsequences of the samples).
fn rows(
    cat: &Category,
    scored: &[(&Sample, f32)],
    left_out: &[(&Sample, String)],
) -> Vec<ImageScore> {
    let (mut scored, mut left_out) = (scored.iter().peekable(), left_out.iter().peekable());
    let mut out = Vec::new();
    for sample in &cat.samples {
        let (score, error) =
            if let Some((_, score)) = scored.next_if(|(s, _)| std::ptr::eq(*s, sample)) {
                (Some(*score), None)
            } else if let Some((_, error)) = left_out.next_if(|(s, _)| std::ptr::eq(*s, sample)) {
                (None, Some(error.clone()))
            } else {
                continue; // not given to the scorer (cannot happen: every sample is one or the other)
            };
        out.push(ImageScore {
            category: cat.name.clone(),
            defect: sample.defect.clone(),
            anomalous: sample.anomalous,
            score,
            image: sample.image.display().to_string(),
            error,
        });
    }
    out
}

fn png_bytes(img: RgbImage) -> Result<Vec<u8>, image::ImageError> {
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(img).write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    Ok(bytes)
}

fn figures(report: &Report, curves: &[CategoryCurves]) -> Result<Vec<Figure>, RunError> {
    let mut out = Vec::new();
    type Pick = fn(&CategoryCurves) -> &Option<Curve>;
    /// The titles drawn on the x and y axes.
    type Titles = (&'static str, &'static str);
    const ROC: Titles = ("False positive rate", "True positive rate");
    let kinds: [(&str, &str, Titles, Pick, bool); 3] = [
        (
            "Image ROC",
            "x: false-positive rate, y: true-positive rate (0 to 1, grid every 0.2)",
            ROC,
            |c| &c.roc,
            true,
        ),
        (
            "Image precision–recall",
            "x: recall, y: precision (0 to 1, grid every 0.2)",
            ("Recall", "Precision"),
            |c| &c.pr,
            false,
        ),
        (
            "Pixel ROC",
            "x: false-positive rate, y: true-positive rate (0 to 1, grid every 0.2)",
            ROC,
            |c| &c.pixel_roc,
            true,
        ),
    ];
    for (title, axes, titles, pick, diagonal) in kinds {
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
            png: png_bytes(plot::curves(&series, 320, diagonal, titles))?,
            legend,
        });
    }
    Ok(out)
}

/// What a worst-ranked image's caption says of it. Only a decision makes a good image a false
/// alarm or a defective one a miss: with a `threshold` each is said to be NG or OK at it (NG:
/// score above it, as everywhere), without one only its rank is.
fn worst_caption(sample: &Sample, score: f32, threshold: Option<f32>) -> String {
    let what = if sample.anomalous {
        sample.defect.as_str()
    } else {
        "good"
    };
    match (threshold.map(|t| score > t), sample.anomalous) {
        (None, false) => format!("{what}, among the highest good scores"),
        (None, true) => format!("{what}, among the lowest defect scores"),
        (Some(true), false) => format!("{what}, NG at the threshold: a false alarm"),
        (Some(false), false) => {
            format!("{what}, OK at the threshold (among the highest good scores)")
        }
        (Some(false), true) => format!("{what}, OK at the threshold: missed"),
        (Some(true), true) => {
            format!("{what}, NG at the threshold (among the lowest defect scores)")
        }
    }
}

/// Overlays (at the map's resolution, ground truth outlined in white) of the normal images
/// scored highest and the anomalous ones scored lowest, captioned by [`worst_caption`].
fn worst_overlays(
    scorer: &dyn Scorer,
    category: &str,
    scored: &[(&Sample, f32)],
    n: usize,
    size: usize,
    threshold: Option<f32>,
) -> Result<Vec<Worst>, RunError> {
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
        // Scored images loaded once already.
        let Ok(img) = scorer.load(&sample.image) else {
            continue;
        };
        let mut heat = scorer.overlay(&img).map_err(RunError::Scorer)?;
        if let Some(mask) = sample.mask.as_ref().and_then(|m| load_mask(m, size).ok()) {
            outline(&mut heat, &mask, size);
        }
        let name = sample
            .image
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let what = worst_caption(sample, *score, threshold);
        out.push(Worst {
            category: category.into(),
            caption: format!("{}/{name}: {what}, score {score:.4}", sample.defect),
            png: png_bytes(heat)?,
        });
    }
    Ok(out)
}

/// The mask's boundary drawn in white on `img` (both `size × size`).
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
