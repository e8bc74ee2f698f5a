//! One category of a dataset evaluated: every test image scored by a caller's [`Scorer`] in
//! batches, image metrics from the scores, pixel metrics folded into the bounded histograms of
//! [`PixelAccumulator`], the warnings that say which metrics are undefined or only known within an
//! interval, and the curves for the plots. Nothing here knows which model or backend scores.
//!
//! Ground-truth masks are compared at the map's resolution: resized to H×W by nearest neighbour,
//! foreground ≥ 128, as the reference's data loader does.

use std::path::Path;

use image::RgbImage;

use crate::dataset::{Category, Sample};
use crate::metrics::{Curve, Groups};
use crate::pixels::PixelAccumulator;
use crate::report::{CategoryReport, Metrics, PixelIntervals};

/// One image's result: its score and its map, `size × size` row-major.
#[derive(Debug, Clone)]
pub struct ScoredMap {
    pub score: f32,
    pub map: Vec<f32>,
}

/// What scores images: a model on a backend, as the caller set it up.
pub trait Scorer {
    /// The side of the square maps [`Scorer::score`] returns.
    fn map_size(&self) -> usize;
    /// Decodes an image file as the scorer expects; the error names the file.
    fn load(&self, path: &Path) -> Result<RgbImage, String>;
    /// Scores a batch of images, one result per image in order.
    fn score(
        &self,
        images: &[&RgbImage],
    ) -> Result<Vec<ScoredMap>, Box<dyn std::error::Error + Send + Sync>>;
    /// The image at the map's resolution with its anomaly map laid over it, for the report's
    /// worst-ranked images.
    fn overlay(
        &self,
        image: &RgbImage,
    ) -> Result<RgbImage, Box<dyn std::error::Error + Send + Sync>>;
    /// Scores the files `paths`, `batch` at a time (those that cannot be read left out of their
    /// batch), and gives `each` every file's result in file order: its score and map, or why it
    /// could not be read. The default loads a batch, scores it, then the next; a scorer may
    /// overlap the two, with the same batches and so the same numbers.
    fn score_files(
        &self,
        paths: &[&Path],
        batch: usize,
        each: &mut dyn FnMut(usize, Result<ScoredMap, String>),
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        for (c, chunk) in paths.chunks(batch.max(1)).enumerate() {
            let loaded: Vec<Result<RgbImage, String>> =
                chunk.iter().map(|p| self.load(p)).collect();
            let images: Vec<&RgbImage> = loaded.iter().flatten().collect();
            let mut results = if images.is_empty() {
                Vec::new()
            } else {
                self.score(&images)?
            }
            .into_iter();
            for (i, image) in loaded.into_iter().enumerate() {
                let result = image.map(|_| results.next().expect("one result per image"));
                each(c * batch.max(1) + i, result);
            }
        }
        Ok(())
    }
}

/// What happens during an evaluation, for the caller to show as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A metric or an image is affected but the evaluation goes on.
    Warning(String),
    /// An image is left out (unreadable, or a non-finite score); the run should fail at the end.
    Error(String),
    /// This many more images are done.
    Progress(usize),
}

/// Curves of one category, thinned for plotting.
#[derive(Debug, Clone)]
pub struct CategoryCurves {
    pub roc: Option<Curve>,
    pub pr: Option<Curve>,
    pub pixel_roc: Option<Curve>,
}

/// Points a plotted curve keeps at most.
const CURVE_POINTS: usize = 2000;

/// One category's outcome.
#[derive(Debug)]
pub struct CategoryResult<'a> {
    pub report: CategoryReport,
    /// Every image that was scored, with its score.
    pub scored: Vec<(&'a Sample, f32)>,
    /// Every image left out by an [`Event::Error`], with why (the image's path not repeated),
    /// in file order: the report lists them beside the scores, so that no input goes unrecorded.
    pub left_out: Vec<(&'a Sample, String)>,
    pub curves: CategoryCurves,
    /// Whether any image was left out by an [`Event::Error`].
    pub failed: bool,
}

/// `error` without a leading `"{image}: "`, as a record that names the image beside it reads it.
fn without_path(error: &str, image: &Path) -> String {
    let prefix = format!("{}: ", image.display());
    error.strip_prefix(&prefix).unwrap_or(error).to_string()
}

/// The ground truth at the map's resolution: nearest neighbour, foreground ≥ 128.
pub fn load_mask(path: &Path, size: usize) -> Result<Vec<bool>, String> {
    let img = image::ImageReader::open(path)
        .map_err(|e| format!("{}: cannot open mask: {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| format!("{}: cannot open mask: {e}", path.display()))?
        .decode()
        .map_err(|e| format!("{}: cannot decode mask: {e}", path.display()))?
        .to_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(format!("{}: the mask is empty ({w}×{h})", path.display()));
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

/// Scores `category` in batches of `batch` and computes its metrics; `pixels` is reset first and
/// reused across categories so its histograms are allocated once. Fails only if the scorer does.
pub fn evaluate_category<'a>(
    category: &'a Category,
    scorer: &dyn Scorer,
    batch: usize,
    pixels: &mut PixelAccumulator,
    events: &mut dyn FnMut(Event),
) -> Result<CategoryResult<'a>, Box<dyn std::error::Error + Send + Sync>> {
    for w in &category.warnings {
        events(Event::Warning(w.clone()));
    }
    let size = scorer.map_size();
    pixels.reset();
    let mut scored: Vec<(&Sample, f32)> = Vec::new();
    let mut left_out: Vec<(&Sample, String)> = Vec::new();
    // What stderr says of each left-out image, in the category's warnings too (metrics.json).
    let mut left_out_warnings: Vec<String> = Vec::new();
    let mut pixel_images = 0;
    let paths: Vec<&Path> = category.samples.iter().map(|s| s.image.as_path()).collect();
    scorer.score_files(&paths, batch, &mut |index, result| {
        let sample = &category.samples[index];
        events(Event::Progress(1));
        let mut leave_out = |error: String| {
            let message = format!("{}: {error}; left out", sample.image.display());
            events(Event::Error(message.clone()));
            left_out_warnings.push(message);
            left_out.push((sample, error));
        };
        let result = match result {
            Ok(result) => result,
            Err(e) => return leave_out(without_path(&e, &sample.image)),
        };
        {
            if !result.score.is_finite() || result.map.iter().any(|v| !v.is_finite()) {
                return leave_out("the model produced a non-finite score or map".into());
            }
            scored.push((sample, result.score));
            let mask = match (&sample.mask, sample.anomalous) {
                (Some(m), _) => match load_mask(m, size) {
                    Ok(mask) => Some(mask),
                    Err(e) => {
                        events(Event::Warning(format!(
                            "{e}; {} left out of the pixel metrics",
                            sample.image.display()
                        )));
                        None
                    }
                },
                (None, false) => Some(vec![false; size * size]),
                (None, true) => None, // the dataset listed it as a warning already
            };
            if let Some(mask) = mask {
                pixels.add(&result.map, &mask, size, size);
                pixel_images += 1;
            }
        }
    })?;

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
    let name = &category.name;
    let mut warnings = category.warnings.clone();
    warnings.extend(left_out_warnings);
    let listed = warnings.len();
    let [auroc_range, ap_range, aupro_range] = pixels.intervals();
    for (what, range) in [
        ("pixel AUROC", auroc_range),
        ("pixel AP", ap_range),
        ("AUPRO", aupro_range),
    ] {
        if let Some([lo, hi]) = range.filter(|[lo, hi]| hi - lo > 1e-3) {
            warnings.push(format!(
                "{name}: {what} is only known within [{lo:.4}, {hi:.4}] (histogram binning)"
            ));
        }
    }
    let anomalous = labels.iter().filter(|&&l| l).count();
    if !scored.is_empty() && (anomalous == 0 || anomalous == scored.len()) {
        let only = if anomalous == 0 {
            "normal"
        } else {
            "anomalous"
        };
        warnings.push(format!(
            "{name}: only {only} images; image metrics undefined"
        ));
    }
    if pixels.regions() == 0 && !scored.is_empty() {
        warnings.push(format!(
            "{name}: no ground-truth defect pixels; pixel metrics undefined"
        ));
    }
    for w in warnings.iter().skip(listed) {
        events(Event::Warning(w.clone()));
    }
    Ok(CategoryResult {
        report: CategoryReport {
            name: name.clone(),
            images: scored.len(),
            anomalous,
            pixel_images,
            metrics,
            pixel_intervals: PixelIntervals {
                pixel_auroc: auroc_range,
                pixel_ap: ap_range,
                aupro: aupro_range,
            },
            warnings,
            decisions: None,
        },
        curves: CategoryCurves {
            roc: groups.roc().map(|c| c.thinned(CURVE_POINTS)),
            pr: groups.pr().map(|c| c.thinned(CURVE_POINTS)),
            pixel_roc: pixels.roc().map(|c| c.thinned(CURVE_POINTS)),
        },
        scored,
        failed: !left_out.is_empty(),
        left_out,
    })
}
