//! `dlvp threshold --good DIR --false-alarm A --out M.onnx [--model M] [RUN]`: calibrates a
//! graph's decision thresholds on a line's good images (split-conformal, `dlvp_eval::threshold`)
//! and writes the graph with them in its metadata (`dlvp.threshold.*`, model-spec/README.md);
//! nothing else in the graph changes, and the same images give the same file. With
//! `--triton-repo`, the graph is the repository's `NAME/1/model.onnx` (rewritten in place), and
//! `NAME/config.pbtxt` states the thresholds as model parameters too. With `--defects DIR`, the
//! written graph then runs `dlvp eval`'s report on the defects (and good images): the detection
//! rate at the threshold with its 95% interval, AUROC, and the worst misses and false alarms.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use dlvp_eval::dataset::{self, Category, Layout, Sample};
use dlvp_eval::run::{RunInfo, RunOptions};
use dlvp_eval::threshold::{conformal, images_needed, pixel_threshold, DEFAULT_MARGIN};
use dlvp_runtime::metadata::{with_thresholds, ThresholdSource, Thresholds};
use dlvp_runtime::pipeline::{self, PipelineOptions};

use crate::cli::{default_model, load_detector, write_atomically, Model, RunArgs};

#[derive(Args)]
#[command(group(
    clap::ArgGroup::new("destination")
        .args(["out", "triton_repo"])
        .required(true)
        .multiple(false)
))]
pub struct ThresholdArgs {
    /// Defect-free images of the line: folders (searched recursively), files or quoted globs.
    #[arg(long, required = true, num_args = 1..)]
    good: Vec<PathBuf>,
    /// The false-alarm rate to guarantee at most on good parts, between 0 and 1 (0.01: at most
    /// one good part in a hundred flagged NG). Needs at least (1 − A)/A good images.
    #[arg(long, value_name = "A")]
    false_alarm: f64,
    /// Place each threshold at least M above its conformal order statistic and M away from every
    /// good image's score: scores move in their last digits with the batch and between fp32
    /// backends (about 1e-5 at most, docs/decisions.md), and a threshold sitting on a score would
    /// decide that image differently from run to run. Raising a threshold keeps the guarantee.
    #[arg(long, value_name = "M", default_value_t = DEFAULT_MARGIN, value_parser = margin_value)]
    margin: f32,
    /// Where to write the graph with its thresholds (atomically; it may be --model itself).
    /// This or --triton-repo is required.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The graph to calibrate (default: the embedded demo model).
    #[arg(long, conflicts_with = "triton_repo")]
    model: Option<PathBuf>,
    /// A Triton model repository `dlvp export --triton-repo` wrote (run that first): calibrate
    /// its model's `1/model.onnx`, write the thresholds into it, and state them in its
    /// `config.pbtxt` as model parameters (`dlvp.threshold.*`). This or --out is required.
    #[arg(long, value_name = "DIR")]
    triton_repo: Option<PathBuf>,
    /// With --triton-repo: the model's folder in the repository (default: its only model).
    #[arg(long, requires = "triton_repo", value_name = "NAME")]
    triton_name: Option<String>,
    /// Defective images to check the threshold on: a folder of them (searched recursively), or
    /// an MVTec AD dataset or category (its test/good images then count the false alarms, its
    /// masks give the pixel metrics). Reports the detection rate at the threshold (95%
    /// interval), AUROC and the worst misses and false alarms, as `dlvp eval` does.
    #[arg(long, value_name = "DIR")]
    defects: Option<PathBuf>,
    /// With --defects: the folder for the report (metrics.json, report.html, ...).
    #[arg(
        long,
        requires = "defects",
        default_value = "out/threshold",
        value_name = "DIR"
    )]
    report: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
    /// Images per model run.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch: u32,
    /// Decode JPEGs at 1/2, 1/4 or 1/8 scale in the DCT domain when still at least the model's
    /// input size (Pillow's `draft`): several times faster on multi-megapixel frames, but the
    /// pixels differ from the full decode, so scores move (demo model, 5 MP JPEGs: 0.005 on
    /// average, up to 0.04; outside the Pillow parity). Detect with it too.
    #[arg(long, conflicts_with = "tile")]
    jpeg_draft: bool,
    #[command(flatten)]
    tiles: crate::cli::TileArgs,
    /// Refuse images of more pixels than this, from their header.
    #[arg(long, default_value_t = dlvp_runtime::preprocess::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
}

pub fn run(args: ThresholdArgs) -> anyhow::Result<ExitCode> {
    let alpha = args.false_alarm;
    let needed = images_needed(alpha).map_err(|e| anyhow::anyhow!("--false-alarm: {e}"))?;
    let (files, problems) = crate::cli::inputs::expand(&args.good, None).into_paths();
    if !problems.is_empty() {
        bail!("--good: {}", problems.join("; "));
    }
    if files.len() < needed {
        bail!(
            "--good: {} image(s) are too few for --false-alarm {alpha}: the guarantee needs at least {needed}",
            files.len()
        );
    }
    let triton = match &args.triton_repo {
        Some(repo) => Some(triton_model(repo, args.triton_name.as_deref())?),
        None => None,
    };
    let (model, out) = match (&triton, &args.out) {
        (Some(t), _) => (Model::File(t.onnx.clone()), t.onnx.clone()),
        (None, Some(out)) => (
            crate::cli::resolve_model(args.model.as_deref()),
            out.clone(),
        ),
        (None, None) => unreachable!("clap requires --out or --triton-repo"),
    };
    if let Model::File(path) = &model {
        // Refused before any image is scored; the bytes are read again once the detector is gone.
        self_contained(path)?;
    }
    // Listed before any image is scored, so a wrong folder fails at once.
    let defects = match &args.defects {
        Some(dir) => Some(defect_categories(dir, &files)?),
        None => None,
    };
    let tiling = args.tiles.options()?;
    let detector = load_detector(&model, &args.run, args.batch)?;
    let options = PipelineOptions {
        keep_images: false,
        jpeg_draft: args.jpeg_draft,
        tiling,
        ..PipelineOptions::new(args.batch as usize, args.max_pixels)
    };
    let (mut scores, mut maxima, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
    let peak = |s: pipeline::Scored<()>| {
        let max = s.detection.map.iter().copied().fold(f32::MIN, f32::max);
        (s.detection.score, max)
    };
    // Tiled as `detect --tile` scores them: the largest tile score, the blended map's peak.
    pipeline::run(
        &detector,
        &files,
        &options,
        |_, _| (),
        peak,
        |_, _, result| {
            match result {
                Ok((score, max)) => {
                    scores.push(score);
                    maxima.push(max);
                }
                Err(e) => unreadable.push(crate::cli::image_error(e)),
            }
            true
        },
    )?;
    // Every good image counts in the guarantee's n: one that cannot be scored is an error.
    if !unreadable.is_empty() {
        bail!("--good: {}", unreadable.join("; "));
    }
    let image = conformal(&scores, alpha)?.clear_of(&scores, args.margin);
    let pixel = pixel_threshold(&maxima, alpha)?.clear_of(&maxima, args.margin);
    // Scores near 1 leave no threshold that can still say NG.
    for (what, t) in [("image scores", &image), ("map maxima", &pixel)] {
        if let Err(e) = dlvp_runtime::decision::check_threshold(t.value) {
            bail!(
                "--good: the good images' {what} reach {} (the order statistic at --false-alarm {alpha}), so the threshold {e}; is the model right for these images?",
                t.order_statistic
            );
        }
    }
    let thresholds = Thresholds {
        image: image.value,
        pixel: pixel.value,
        false_alarm: alpha,
        images: image.n,
        tiling,
    };
    let source = ThresholdSource {
        images_sha256: dlvp_eval::dataset::digest_files(&files)?,
        margin: args.margin,
        scored_with: format!(
            "{}{}, {} ({})",
            match &tiling {
                Some(t) => format!("tiles ({})", t.describe()),
                None => "resize".into(),
            },
            if args.jpeg_draft { " (JPEG draft)" } else { "" },
            detector.backend(),
            detector.executor()
        ),
    };
    // Read once the detector is gone, so a large model is not held twice beside the backend's copy.
    drop(detector);
    let bytes = match &model {
        Model::File(path) => self_contained(path)?,
        Model::Embedded => default_model::BYTES.to_vec(),
    };
    let written = with_thresholds(&bytes, &thresholds, &source)
        .with_context(|| format!("{}: not an ONNX model", model.label()))?;
    if let Some(t) = &triton {
        // The graph first: a config that states thresholds its graph lacks would mislead.
        write_atomically(&out, &written)?;
        let config = std::fs::read_to_string(&t.config)
            .with_context(|| format!("{}: cannot read", t.config.display()))?;
        let config = dlvp_exporter::artifacts::triton::with_model_parameters(
            &config,
            &dlvp_runtime::metadata::threshold_props(&thresholds),
        );
        write_atomically(&t.config, config.as_bytes())?;
        eprintln!("stated them in {}", t.config.display());
    } else {
        write_atomically(&out, &written)?;
    }
    println!(
        "image threshold {} (score {} of {} good, {}, plus a margin of {}), pixel threshold {}: a good image like these is NG with probability at most {alpha} (at least {:.4}); wrote {}",
        image.value,
        image.rank,
        image.n,
        image.order_statistic,
        args.margin,
        pixel.value,
        image.lower_rate(),
        out.display()
    );
    let Some((categories, calibration_goods)) = defects else {
        return Ok(ExitCode::SUCCESS);
    };
    // The graph just written, thresholds read back from it: what a line will run.
    let detector = load_detector(&Model::File(out.clone()), &args.run, args.batch)?;
    let info = RunInfo {
        model: out.display().to_string(),
        backend: detector.backend().to_string(),
        provider: detector.executor(),
        data: args.defects.clone().expect("defects given"),
        layout: Layout::Mvtec,
        decision: super::eval::decision_threshold(&detector, None)?,
    };
    let options = RunOptions {
        batch: args.batch as usize,
        worst: 3,
    };
    let scorer = super::eval::DetectorScorer::new(
        &detector,
        args.max_pixels,
        tiling,
        None,
        args.batch as usize,
    );
    let evaluation =
        super::eval::evaluate_and_write(&scorer, &categories, &info, options, &args.report)?;
    print!("\n{}", evaluation.report.to_markdown());
    if calibration_goods {
        println!(
            "\nThe good images beside the defects are the calibration images: their false alarms are about α by construction, not an estimate; held-out good images (an MVTec test/good folder) measure them."
        );
    }
    eprintln!(
        "wrote {}/{{{}}}",
        args.report.display(),
        dlvp_eval::run::FILES.join(",")
    );
    Ok(if evaluation.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The report's categories for `--defects DIR`: an MVTec AD category folder (`DIR/test`) or
/// dataset (`DIR/<category>/test`) as `dlvp eval` reads it, else every image under DIR as a
/// defect. A category without good images of its own gets the calibration images as its good
/// ones (AUROC needs both kinds); the flag says whether any did.
fn defect_categories(dir: &Path, good: &[PathBuf]) -> anyhow::Result<(Vec<Category>, bool)> {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut categories = if dir.join("test").is_dir() {
        let parent = dir.parent().unwrap_or(Path::new("."));
        dataset::load(parent, Layout::Mvtec, &[name(dir)])
            .with_context(|| format!("--defects {}", dir.display()))?
    } else {
        match dataset::load(dir, Layout::Mvtec, &[]) {
            Ok(categories) => categories,
            Err(dataset::DatasetError::Empty { .. }) => {
                let images = dataset::images_under(dir)
                    .with_context(|| format!("--defects {}", dir.display()))?;
                vec![Category {
                    name: name(dir),
                    samples: images
                        .into_iter()
                        .map(|image| Sample {
                            image,
                            anomalous: true,
                            mask: None,
                            defect: "defect".into(),
                        })
                        .collect(),
                    warnings: vec![],
                }]
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("--defects {}", dir.display())))
            }
        }
    };
    if !categories
        .iter()
        .any(|c| c.samples.iter().any(|s| s.anomalous))
    {
        bail!("--defects {}: no defective images", dir.display());
    }
    let mut calibration_goods = false;
    for category in &mut categories {
        if !category.samples.iter().any(|s| !s.anomalous) {
            calibration_goods = true;
            category.samples.extend(good.iter().map(|image| Sample {
                image: image.clone(),
                anomalous: false,
                mask: None,
                defect: "good (calibration)".into(),
            }));
        }
    }
    Ok((categories, calibration_goods))
}

/// A model of a Triton repository: its graph and its configuration.
struct TritonModel {
    onnx: PathBuf,
    config: PathBuf,
}

/// `REPO/NAME` (NAME given, or the repository's only model folder) with its `config.pbtxt` and
/// `1/model.onnx`, as `dlvp export --triton-repo` writes them.
fn triton_model(repo: &std::path::Path, name: Option<&str>) -> anyhow::Result<TritonModel> {
    if !repo.is_dir() {
        bail!(
            "--triton-repo {}: no such folder; a repository is written by `dlvp export --weights CKPT --triton-repo {}` first (or calibrate a plain graph with --model M.onnx --out M.onnx)",
            repo.display(),
            repo.display()
        );
    }
    let folder = match name {
        Some(name) => repo.join(name),
        None => {
            let entries = std::fs::read_dir(repo)
                .with_context(|| format!("--triton-repo {}: cannot read", repo.display()))?;
            let mut models: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("config.pbtxt").is_file())
                .collect();
            models.sort();
            match models.len() {
                1 => models.remove(0),
                0 => bail!(
                    "--triton-repo {}: no model folder with a config.pbtxt (write one with `dlvp export --triton-repo`)",
                    repo.display()
                ),
                _ => {
                    let names: Vec<String> = models
                        .iter()
                        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                        .collect();
                    bail!(
                        "--triton-repo {}: holds models {}; choose one with --triton-name",
                        repo.display(),
                        names.join(", ")
                    )
                }
            }
        }
    };
    let model = TritonModel {
        onnx: folder.join("1").join("model.onnx"),
        config: folder.join("config.pbtxt"),
    };
    for path in [&model.config, &model.onnx] {
        if !path.is_file() {
            bail!(
                "--triton-repo: {} is missing (a model folder of `dlvp export --triton-repo` has config.pbtxt and 1/model.onnx)",
                path.display()
            );
        }
    }
    Ok(model)
}

/// `--margin`'s parser: a number in [0, 0.1] (a larger one would move the threshold by more
/// than the spread of good scores that matters).
fn margin_value(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(m) if (0.0..=0.1).contains(&m) => Ok(m),
        _ => Err(format!("{text:?}: expected a number from 0 to 0.1")),
    }
}

/// The model file's bytes, unless it keeps its weights in external data (thresholds are written
/// into self-contained graphs).
fn self_contained(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("{}: cannot read model", path.display()))?;
    if dlvp_runtime::onnx_head::ModelHead::decode_from(&bytes).is_ok_and(|h| h.has_external_data())
    {
        bail!(
            "{}: keeps its weights in external data; thresholds are written into self-contained graphs",
            path.display()
        );
    }
    Ok(bytes)
}
