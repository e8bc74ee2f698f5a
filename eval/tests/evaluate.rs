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
    // Each left-out image is recorded, not only announced: in the category's warnings (as the
    // event said it) and in the result's list, with why (the path not repeated).
    for e in &errors {
        assert!(
            result.report.warnings.contains(e),
            "{e} not in {:?}",
            result.report.warnings
        );
    }
    let left_out: Vec<(&str, &str)> = result
        .left_out
        .iter()
        .map(|(s, e)| (s.image.file_name().unwrap().to_str().unwrap(), e.as_str()))
        .collect();
    assert_eq!(
        left_out,
        [
            ("broken.png", "cannot decode"),
            ("nan.png", "the model produced a non-finite score or map")
        ]
    );
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
    use dlvp_eval::run::{evaluate_all, RunOptions, FILES};
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
    let categories = [
        category("a", &[]),
        category("b", &["broken.png", "nan.png"]),
    ];
    let info = oracle_run(dir.path(), Some(0.5));
    let options = RunOptions { batch: 2, worst: 1 };
    let mut errors = 0;
    let run = evaluate_all(&categories, &Oracle, &info, options, &mut |e| {
        errors += matches!(e, Event::Error(_)) as usize
    })
    .unwrap();
    assert!(run.failed, "broken.png was left out");
    assert_eq!(errors, 2);
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
    // Every image has a row, the left-out ones with no score and why, in file order.
    assert_eq!(run.scores.len(), 6);
    let b: Vec<(Option<f32>, Option<&str>)> = run.scores[2..]
        .iter()
        .map(|s| (s.score, s.error.as_deref()))
        .collect();
    assert_eq!(
        b,
        [
            (Some(0.1), None),
            (Some(0.9), None),
            (None, Some("cannot decode")),
            (None, Some("the model produced a non-finite score or map")),
        ]
    );
    let listed: Vec<(&str, &str)> = run
        .report
        .left_out
        .iter()
        .map(|l| (l.category.as_str(), l.error.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("b", "cannot decode"),
            ("b", "the model produced a non-finite score or map")
        ]
    );
    assert!(run.report.left_out[0].image.ends_with("broken.png"));
    assert_eq!(run.report.categories[1].images, 2);
    assert_eq!(run.report.categories[1].warnings.len(), 2);
    // One good scored highest and one bad scored lowest per category, each said to be OK or NG
    // at the threshold (0.5: good 0.1 OK, bad 0.9 NG): neither a false alarm nor a miss.
    assert_eq!(run.worst.len(), 4);
    assert_eq!(
        run.worst[0].caption,
        "good/good1.png: good, OK at the threshold (among the highest good scores), score 0.1000"
    );
    assert_eq!(
        run.worst[1].caption,
        "hole/bad1.png: hole, NG at the threshold (among the lowest defect scores), score 0.9000"
    );
    let out = dir.path().join("report");
    let written = run.write(&out).unwrap();
    assert_eq!(written.len(), FILES.len());
    for (path, name) in written.iter().zip(FILES) {
        assert_eq!(path, &out.join(name));
        assert!(std::fs::metadata(path).unwrap().len() > 0, "{name}");
    }
    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    let lines: Vec<&str> = scores.lines().collect();
    assert_eq!(lines[0], "category,defect,label,score,image,error");
    assert!(
        lines[5].starts_with("b,good,normal,,") && lines[5].ends_with("broken.png,cannot decode"),
        "{scores}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2 id=\"left-out\">Left out</h2>"), "{html}");
    assert!(html.contains("broken.png</code></td><td>cannot decode</td>"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(
        json["left_out"][1]["error"],
        "the model produced a non-finite score or map"
    );
    assert!(run.report.to_markdown().contains("**2 images left out**"));
}

/// Without a threshold a worst-ranked image is only ranked: no "false alarm" or "missed"; with
/// one, a good image is a false alarm only when it is NG there and a defect a miss only when OK.
#[rstest::rstest]
#[case::no_threshold(
    None,
    "good, among the highest good scores",
    "hole, among the lowest defect scores"
)]
#[case::below_both(
    Some(0.05),
    "good, NG at the threshold: a false alarm",
    "hole, NG at the threshold (among the lowest defect scores)"
)]
#[case::between(
    Some(0.5),
    "good, OK at the threshold (among the highest good scores)",
    "hole, NG at the threshold (among the lowest defect scores)"
)]
#[case::above_both(
    Some(0.95),
    "good, OK at the threshold (among the highest good scores)",
    "hole, OK at the threshold: missed"
)]
// A tie is OK, as everywhere.
#[case::at_the_bad_score(
    Some(0.9),
    "good, OK at the threshold (among the highest good scores)",
    "hole, OK at the threshold: missed"
)]
fn worst_captions_say_false_alarm_or_miss_only_at_a_threshold(
    #[case] threshold: Option<f32>,
    #[case] good: &str,
    #[case] bad: &str,
) {
    use dlvp_eval::run::{evaluate_all, RunOptions};
    let dir = tempfile::tempdir().unwrap();
    let categories = [Category {
        name: "a".into(),
        samples: vec![
            sample(dir.path(), "good1.png", None),
            sample(dir.path(), "bad1.png", None),
        ],
        warnings: vec![],
    }];
    let info = oracle_run(dir.path(), threshold);
    let run = evaluate_all(
        &categories,
        &Oracle,
        &info,
        RunOptions { batch: 2, worst: 1 },
        &mut |_| {},
    )
    .unwrap();
    let captions: Vec<&str> = run.worst.iter().map(|w| w.caption.as_str()).collect();
    assert_eq!(
        captions,
        [
            format!("good/good1.png: {good}, score 0.1000"),
            format!("hole/bad1.png: {bad}, score 0.9000"),
        ]
    );
}

/// What the report says of an oracle run on `data`, deciding at `threshold` (`--threshold`).
fn oracle_run(data: &std::path::Path, threshold: Option<f32>) -> dlvp_eval::run::RunInfo {
    dlvp_eval::run::RunInfo {
        model: "oracle".into(),
        backend: "none".into(),
        provider: "test".into(),
        data: data.to_path_buf(),
        layout: dlvp_eval::dataset::Layout::Mvtec,
        decision: threshold.map(|t| dlvp_eval::decisions::DecisionThreshold {
            threshold: t,
            stated_false_alarm: None,
            source: "--threshold".into(),
        }),
    }
}
