//! One category evaluated through a scorer that knows the answers: perfect scores give perfect
//! metrics, an unreadable image and a non-finite score are left out with an error event, and a
//! missing mask is a warning that keeps the image out of the pixel metrics only.

use std::path::{Path, PathBuf};

use dlvp_eval::dataset::{Category, Sample};
use dlvp_eval::evaluate::{evaluate_category, Event, ScoredMap, Scorer};
use dlvp_eval::pixels::PixelAccumulator;
use image::RgbImage;

const SIZE: usize = 4;

/// The defect square of every mask: rows and columns 1..3.
fn in_square(i: usize) -> bool {
    (1..3).contains(&(i / SIZE)) && (1..3).contains(&(i % SIZE))
}

/// Reads the answer from the file name: `bad*` anomalous, `broken*` unreadable, `nan*` non-finite.
struct Oracle;

impl Scorer for Oracle {
    fn map_size(&self) -> usize {
        SIZE
    }

    fn load(&self, path: &Path) -> Result<RgbImage, String> {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("broken") {
            return Err(format!("{}: cannot decode", path.display()));
        }
        let code = match &name[..3] {
            "bad" => 1,
            "nan" => 2,
            _ => 0,
        };
        Ok(RgbImage::from_pixel(1, 1, image::Rgb([code, 0, 0])))
    }

    fn score(
        &self,
        images: &[&RgbImage],
    ) -> Result<Vec<ScoredMap>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(images
            .iter()
            .map(|img| match img.get_pixel(0, 0).0[0] {
                1 => ScoredMap {
                    score: 0.9,
                    map: (0..SIZE * SIZE)
                        .map(|i| if in_square(i) { 1.0 } else { 0.0 })
                        .collect(),
                },
                2 => ScoredMap {
                    score: f32::NAN,
                    map: vec![0.0; SIZE * SIZE],
                },
                _ => ScoredMap {
                    score: 0.1,
                    map: vec![0.1; SIZE * SIZE],
                },
            })
            .collect())
    }

    fn overlay(
        &self,
        image: &RgbImage,
    ) -> Result<RgbImage, Box<dyn std::error::Error + Send + Sync>> {
        let n = SIZE as u32;
        Ok(RgbImage::from_pixel(n, n, *image.get_pixel(0, 0)))
    }
}

fn sample(dir: &Path, name: &str, mask: Option<PathBuf>) -> Sample {
    Sample {
        image: dir.join(name),
        anomalous: name.starts_with("bad"),
        mask,
        defect: if name.starts_with("bad") {
            "hole"
        } else {
            "good"
        }
        .into(),
    }
}

#[test]
fn a_category_scored_by_an_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("mask.png");
    // The mask at 8×8: the square maps onto rows and columns 1..3 of the 4×4 map.
    image::GrayImage::from_fn(8, 8, |x, y| {
        image::Luma([if (2..6).contains(&x) && (2..6).contains(&y) {
            255
        } else {
            0
        }])
    })
    .save(&mask)
    .unwrap();
    let category = Category {
        name: "widget".into(),
        samples: vec![
            sample(dir.path(), "good1.png", None),
            sample(dir.path(), "good2.png", None),
            sample(dir.path(), "bad1.png", Some(mask.clone())),
            sample(dir.path(), "bad2.png", Some(mask)),
            sample(dir.path(), "bad3.png", Some(dir.path().join("missing.png"))),
            sample(dir.path(), "broken.png", None),
            sample(dir.path(), "nan.png", None),
        ],
        warnings: vec!["widget: listed warning".into()],
    };
    let mut events = Vec::new();
    let mut pixels = PixelAccumulator::default();
    let result =
        evaluate_category(&category, &Oracle, 3, &mut pixels, &mut |e| events.push(e)).unwrap();
    let m = &result.report.metrics;
    assert_eq!(m.image_auroc, Some(1.0));
    assert_eq!(m.image_ap, Some(1.0));
    assert_eq!(m.pixel_auroc, Some(1.0));
    assert!(result.failed);
    assert_eq!(result.scored.len(), 5);
    assert_eq!(result.report.images, 5);
    assert_eq!(result.report.anomalous, 3);
    assert_eq!(result.report.pixel_images, 4, "bad3's mask is missing");
    assert_eq!(events[0], Event::Warning("widget: listed warning".into()));
    let errors: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Error(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 2, "{events:?}");
    assert!(errors[0].contains("broken.png: cannot decode; left out"));
    assert!(errors[1].contains("nan.png: the model produced a non-finite score"));
    assert!(events.iter().any(|e| matches!(e, Event::Warning(w)
        if w.contains("missing.png: cannot open mask") && w.contains("bad3.png left out of the pixel metrics"))));
    let done: usize = events
        .iter()
        .map(|e| match e {
            Event::Progress(n) => *n,
            _ => 0,
        })
        .sum();
    assert_eq!(done, 7);
    assert!(result.curves.roc.is_some() && result.curves.pixel_roc.is_some());
}

#[test]
fn one_class_only_warns_that_image_metrics_are_undefined() {
    let dir = tempfile::tempdir().unwrap();
    let category = Category {
        name: "plain".into(),
        samples: vec![sample(dir.path(), "good1.png", None)],
        warnings: vec![],
    };
    let mut events = Vec::new();
    let result = evaluate_category(
        &category,
        &Oracle,
        8,
        &mut PixelAccumulator::default(),
        &mut |e| events.push(e),
    )
    .unwrap();
    assert_eq!(result.report.metrics.image_auroc, None);
    assert!(!result.failed);
    assert!(result
        .report
        .warnings
        .contains(&"plain: only normal images; image metrics undefined".to_string()));
    assert!(events.contains(&Event::Warning(
        "plain: only normal images; image metrics undefined".into()
    )));
}

/// The whole run: the report over the categories, three figures, the worst-ranked overlays with
/// the ground truth outlined, and every file written.
#[test]
fn a_dataset_run_reports_every_category_and_writes_its_files() {
    use dlvp_eval::dataset::Layout;
    use dlvp_eval::run::{evaluate_all, RunInfo, RunOptions, FILES};
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("mask.png");
    image::GrayImage::from_pixel(8, 8, image::Luma([255]))
        .save(&mask)
        .unwrap();
    let category = |name: &str, extra: &[&str]| Category {
        name: name.into(),
        samples: ["good1.png", "bad1.png"]
            .iter()
            .chain(extra)
            .map(|n| sample(dir.path(), n, n.starts_with("bad").then(|| mask.clone())))
            .collect(),
        warnings: vec![],
    };
    let categories = [category("a", &[]), category("b", &["broken.png"])];
    let info = RunInfo {
        model: "oracle".into(),
        backend: "none".into(),
        provider: "test".into(),
        data: dir.path().to_path_buf(),
        layout: Layout::Mvtec,
        decision: Some(dlvp_eval::decisions::DecisionThreshold {
            threshold: 0.5,
            stated_false_alarm: None,
            source: "--threshold".into(),
        }),
    };
    let options = RunOptions { batch: 2, worst: 1 };
    let mut errors = 0;
    let run = evaluate_all(&categories, &Oracle, &info, options, &mut |e| {
        errors += matches!(e, Event::Error(_)) as usize
    })
    .unwrap();
    assert!(run.failed, "broken.png was left out");
    assert_eq!(errors, 1);
    assert_eq!(run.report.categories.len(), 2);
    assert_eq!(run.report.mean.image_auroc, Some(1.0));
    // The oracle scores good 0.1 and bad 0.9: no false alarm, every defect detected.
    let all = run.report.decisions_all.unwrap();
    assert_eq!(
        (
            all.false_alarms.count,
            all.false_alarms.of,
            all.detected.count,
            all.detected.of
        ),
        (0, 2, 2, 2)
    );
    assert!(run.report.categories.iter().all(|c| c.decisions.is_some()));
    assert_eq!(run.figures.len(), 3);
    assert_eq!(run.scores.len(), 4);
    // One good scored highest and one bad scored lowest per category.
    assert_eq!(run.worst.len(), 4);
    assert!(
        run.worst[1]
            .caption
            .contains("hole/bad1.png: hole (missed?)"),
        "{}",
        run.worst[1].caption
    );
    let out = dir.path().join("report");
    let written = run.write(&out).unwrap();
    assert_eq!(written.len(), FILES.len());
    for (path, name) in written.iter().zip(FILES) {
        assert_eq!(path, &out.join(name));
        assert!(std::fs::metadata(path).unwrap().len() > 0, "{name}");
    }
}
