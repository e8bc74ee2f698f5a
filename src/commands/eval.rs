//! `dlvp eval --data ROOT [--layout mvtec|visa] [--categories ...] [--model M] [--backend B] [--out DIR]`:
//! scores a dataset's test images and reports image AUROC / AP / F1-max, pixel AUROC / AP and
//! AUPRO per category and on average, with plots, per-image scores and an HTML report.
//!
//! The evaluation (scoring, metrics, figures, the worst-ranked overlays, the report files) is
//! `dlvp_eval::run`, with the detector as its scorer; this command parses the flags, shows the
//! progress line and prints the summary. Memory stays bounded: pixel maps are folded into fixed
//! histograms (`dlvp_eval::pixels`) and only one score per image is kept.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use dlvp_eval::dataset::{self, DatasetError, Layout};
use dlvp_eval::decisions::DecisionThreshold;
use dlvp_eval::evaluate::{Event, ScoredMap, Scorer};
use dlvp_eval::run::{evaluate_all, RunInfo, RunOptions, FILES};
use dlvp_runtime::decision::{Decider, Origin};
use dlvp_runtime::detector::Detector;
use dlvp_runtime::pipeline::{self, PipelineOptions, Scored};
use dlvp_runtime::postprocess::{overlay, resize_map};
use dlvp_runtime::preprocess::{load_rgb8_limited, resize_rgb8};
use dlvp_runtime::tiling::{detect_tiled, TileOptions};
use image::RgbImage;

use crate::cli::progress::Progress;
use crate::cli::{load_detector, RunArgs};

#[derive(Clone, Copy, ValueEnum)]
pub enum LayoutArg {
    /// <cat>/test/<defect>/*.png, <cat>/ground_truth/<defect>/*_mask.png (`good`: no defect).
    Mvtec,
    /// split_csv/1cls.csv (object,split,label,image,mask), its `test` rows.
    Visa,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Dataset root (MVTec AD: <cat>/test/<defect>/, <cat>/ground_truth/; VisA: split_csv/1cls.csv);
    /// for one category's folder, pass its parent and --categories NAME.
    #[arg(long)]
    data: PathBuf,
    /// How --data is laid out: MVTec AD's folders, or VisA's split_csv/1cls.csv.
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
    /// Images per model run (with --tile: tiles per model run).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch: u32,
    /// Worst-ranked images per category and class shown in the report.
    #[arg(long, default_value_t = 3)]
    worst: usize,
    #[command(flatten)]
    tiles: crate::cli::TileArgs,
    /// Keep only the defective images whose defect (its mask's bounding box, longer side, in
    /// the mask's pixels) is at most PX: how the model does on small defects. Good images all
    /// stay.
    #[arg(long, value_name = "PX")]
    max_defect_px: Option<u32>,
    /// Compare maps with masks at N×N pixels (default: the model's input size). Maps are resized
    /// to it bilinearly; to score a tiled run (--tile) at the detail it resolves, give the
    /// images' own size, and the same N to the untiled run it is compared with.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(8..=8192))]
    map_size: Option<u32>,
    /// Count false alarms and detections at this threshold (NG: score above T) instead of the
    /// one the graph stores (`dlvp threshold`); without either, no decisions are reported. A
    /// number in [0, 1).
    #[arg(long, value_name = "T", value_parser = crate::cli::parsers::threshold_value, allow_hyphen_values = true)]
    threshold: Option<f32>,
}

/// The detector as `dlvp_eval`'s scorer: images decoded within `--max-pixels`, scored whole
/// (through the pipeline) or tiled, maps at `map_size`.
pub(crate) struct DetectorScorer<'a> {
    detector: &'a Detector,
    max_pixels: u64,
    tiling: Option<TileOptions>,
    map_size: usize,
    /// Tiles per graph run, when tiling (`--batch`, as `detect --tile` takes it).
    tile_batch: usize,
}

impl<'a> DetectorScorer<'a> {
    /// Maps at `map_size` (default: the model's input size); tiled, `batch` tiles per run.
    pub(crate) fn new(
        detector: &'a Detector,
        max_pixels: u64,
        tiling: Option<TileOptions>,
        map_size: Option<usize>,
        batch: usize,
    ) -> DetectorScorer<'a> {
        DetectorScorer {
            detector,
            max_pixels,
            tiling,
            map_size: map_size.unwrap_or(detector.info().spec.image_size),
            tile_batch: batch.max(1),
        }
    }
}

impl DetectorScorer<'_> {
    /// A map at `map_size`, row-major (resized when it is not).
    fn at_size(&self, map: &ndarray::Array2<f32>) -> Vec<f32> {
        let n = self.map_size;
        if map.dim() == (n, n) {
            map.iter().copied().collect()
        } else {
            resize_map(map, n, n).iter().copied().collect()
        }
    }

    /// One image's score and map, tiled or whole.
    fn score_one(
        &self,
        image: &RgbImage,
    ) -> Result<(f32, ndarray::Array2<f32>), Box<dyn std::error::Error + Send + Sync>> {
        Ok(match &self.tiling {
            Some(t) => {
                let tiled = detect_tiled(self.detector, image, t, self.tile_batch)?;
                (tiled.score, tiled.map)
            }
            None => {
                let det = self.detector.detect_batch(&[image])?.remove(0);
                (det.score, det.map)
            }
        })
    }
}

impl Scorer for DetectorScorer<'_> {
    fn map_size(&self) -> usize {
        self.map_size
    }

    fn load(&self, path: &Path) -> Result<RgbImage, String> {
        load_rgb8_limited(path, self.max_pixels).map_err(crate::cli::image_error)
    }

    fn overlay(
        &self,
        image: &RgbImage,
    ) -> Result<RgbImage, Box<dyn std::error::Error + Send + Sync>> {
        let (_, map) = self.score_one(image)?;
        let size = self.map_size();
        let resize = self.detector.info().spec.preprocess.resize;
        let map = ndarray::Array2::from_shape_vec((size, size), self.at_size(&map))?;
        Ok(overlay(&resize_rgb8(image, size, size, resize), &map))
    }

    /// On the pipeline (tiled or whole): the next batch decodes while the graph runs this one.
    fn score_files(
        &self,
        paths: &[&Path],
        batch: usize,
        each: &mut dyn FnMut(usize, Result<ScoredMap, String>),
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let files: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
        // Tiled, --batch counts the tiles per graph run, as `detect --tile` takes it.
        let options = PipelineOptions {
            keep_images: false,
            tiling: self.tiling,
            ..PipelineOptions::new(
                if self.tiling.is_some() {
                    self.tile_batch
                } else {
                    batch
                },
                self.max_pixels,
            )
        };
        let to_map = |scored: Scored<()>| ScoredMap {
            score: scored.detection.score,
            map: self.at_size(&scored.detection.map),
        };
        pipeline::run(
            self.detector,
            &files,
            &options,
            |_, _| (),
            to_map,
            |index, _, result| {
                each(index, result.map_err(crate::cli::image_error));
                true
            },
        )?;
        Ok(())
    }

    fn score(
        &self,
        images: &[&RgbImage],
    ) -> Result<Vec<ScoredMap>, Box<dyn std::error::Error + Send + Sync>> {
        if self.tiling.is_some() {
            return images
                .iter()
                .map(|img| {
                    let (score, map) = self.score_one(img)?;
                    Ok(ScoredMap {
                        score,
                        map: self.at_size(&map),
                    })
                })
                .collect();
        }
        Ok(self
            .detector
            .detect_batch(images)?
            .into_iter()
            .map(|d| ScoredMap {
                score: d.score,
                map: self.at_size(&d.map),
            })
            .collect())
    }
}

/// The threshold the report counts decisions at, as `dlvp detect` decides.
pub(crate) fn decision_threshold(
    detector: &Detector,
    given: Option<f32>,
) -> anyhow::Result<Option<DecisionThreshold>> {
    let Some(decider) = Decider::resolve(detector.info().thresholds.as_ref(), given, None)
        .map_err(|e| anyhow::anyhow!("--threshold: {e}"))?
    else {
        return Ok(None);
    };
    Ok(Some(match decider.origin {
        Origin::Model {
            false_alarm,
            images,
        } => DecisionThreshold {
            threshold: decider.image,
            stated_false_alarm: Some(false_alarm),
            source: format!("stored in the graph from {images} good images"),
        },
        Origin::Given => DecisionThreshold {
            threshold: decider.image,
            stated_false_alarm: None,
            source: "--threshold".into(),
        },
    }))
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let layout = match args.layout {
        LayoutArg::Mvtec => Layout::Mvtec,
        LayoutArg::Visa => Layout::Visa,
    };
    let mut categories = match dataset::load(&args.data, layout, &args.categories) {
        Err(
            e @ DatasetError::Empty {
                layout: Layout::Mvtec,
                ..
            },
        ) => anyhow::bail!("{e}; for VisA pass --layout visa"),
        Err(DatasetError::CategoryFolder { path, parent, name }) => anyhow::bail!(
            "--data {}: one category's folder (it holds test/), not a dataset root: pass `--data {} --categories {name}`",
            path.display(),
            parent.display()
        ),
        loaded => loaded?,
    };
    if let Some(px) = args.max_defect_px {
        dataset::small_defects_only(&mut categories, px);
    }
    let model = crate::cli::resolve_model(args.model.as_deref());
    let detector = load_detector(&model, &args.run, args.batch)?;
    let info = RunInfo {
        model: model.label(),
        backend: detector.backend().to_string(),
        provider: detector.executor(),
        data: args.data.clone(),
        layout,
        decision: decision_threshold(&detector, args.threshold)?,
    };
    let options = RunOptions {
        batch: args.batch as usize,
        worst: args.worst,
    };
    let scorer = DetectorScorer::new(
        &detector,
        args.max_pixels,
        args.tiles.options()?,
        args.map_size.map(|n| n as usize),
        args.batch as usize,
    );
    let evaluation = evaluate_and_write(&scorer, &categories, &info, options, &args.out)?;
    print!("{}", evaluation.report.to_markdown());
    eprintln!("wrote {}/{{{}}}", args.out.display(), FILES.join(","));
    Ok(if evaluation.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `categories` scored by `scorer` with a progress line, and the report's files written into
/// `out` (what `dlvp eval` and `dlvp threshold --defects` do).
pub(crate) fn evaluate_and_write(
    scorer: &DetectorScorer,
    categories: &[dataset::Category],
    info: &RunInfo,
    options: RunOptions,
    out: &Path,
) -> anyhow::Result<dlvp_eval::run::Evaluation> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create folder", out.display()))?;
    let total: usize = categories.iter().map(|c| c.samples.len()).sum();
    let mut progress = Progress::new(total);
    let evaluation = evaluate_all(
        categories,
        scorer,
        info,
        options,
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
    )?;
    progress.finish();
    evaluation.write(out)?;
    Ok(evaluation)
}
