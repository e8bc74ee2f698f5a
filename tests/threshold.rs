//! `dlvp threshold` through the binary: the split-conformal threshold of the good images' scores
//! (checked against `dlvp detect`'s own scores) written into the graph's metadata with nothing
//! else changed, the same file for the same images, and the refusals (too few images for the
//! rate, a rate outside (0, 1), an unreadable good image, a graph without the contract's
//! outputs) that write nothing; then every front end deciding with the stored thresholds.

use std::path::Path;

use dlvp_onnx_proto as pb;
use dlvp_test_support::run;
use prost::Message;
use run::{assert_fails, detect_json, dlvp, exported_golden, stderr, stdout};

/// `n` good images of the demo categories, 64 px, in `dir`.
fn good_images(dir: &Path, n: usize) -> std::path::PathBuf {
    run::good_images(dir, "data", n.div_ceil(5), 64, 9)
}

fn threshold(model: &Path, good: &Path, alpha: &str, out: &Path) -> std::process::Output {
    run::threshold(model, good, alpha, out, "tract", &[])
}

fn metadata(model: &pb::ModelProto, key: &str) -> Option<String> {
    model
        .metadata_props
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.clone())
}

#[test]
fn the_threshold_is_the_conformal_order_statistic_and_only_the_metadata_changes() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let good = good_images(dir.path(), 20);
    let out = dir.path().join("line3.onnx");
    let run = threshold(&model, &good, "0.1", &out);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    assert!(
        stdout(&run).contains("NG with probability at most 0.1"),
        "{}",
        stdout(&run)
    );

    // k = ⌈(20 + 1) × 0.9⌉ = 19: the 19th smallest of the scores detect gives the same images,
    // plus the margin, moved past any score within the margin of it.
    let mut scores: Vec<f32> = detect_json(&good, &model, "tract")
        .iter()
        .map(|line| line["score"].as_f64().unwrap() as f32)
        .collect();
    assert_eq!(scores.len(), 20);
    scores.sort_by(f32::total_cmp);
    let written = pb::ModelProto::decode(std::fs::read(&out).unwrap().as_slice()).unwrap();
    let stored: f32 = metadata(&written, "dlvp.threshold.image")
        .unwrap()
        .parse()
        .unwrap();
    let expected = dlvp_eval::threshold::conformal(&scores, 0.1)
        .unwrap()
        .clear_of(&scores, 1e-4);
    assert_eq!((expected.rank, expected.order_statistic), (19, scores[18]));
    assert_eq!(stored, expected.value);
    assert!(stored as f64 >= scores[18] as f64 + 1e-4);
    for s in &scores {
        assert!(
            (*s as f64 - stored as f64).abs() >= 1e-4,
            "{s} within the margin of {stored}"
        );
    }
    assert_eq!(
        metadata(&written, "dlvp.threshold.margin").as_deref(),
        Some("0.0001")
    );
    assert_eq!(
        metadata(&written, "dlvp.threshold.images").as_deref(),
        Some("20")
    );
    assert_eq!(
        metadata(&written, "dlvp.threshold.false_alarm").as_deref(),
        Some("0.1")
    );
    assert!(metadata(&written, "dlvp.threshold.pixel").is_some());
    assert!(metadata(&written, "dlvp.threshold.scored_with")
        .unwrap()
        .starts_with("resize, tract"));

    // The graph, its weights and the other keys as they were.
    let original = pb::ModelProto::decode(std::fs::read(&model).unwrap().as_slice()).unwrap();
    assert_eq!(written.graph, original.graph);
    let kept: Vec<_> = written
        .metadata_props
        .iter()
        .filter(|p| !p.key.starts_with("dlvp.threshold."))
        .collect();
    assert_eq!(kept, original.metadata_props.iter().collect::<Vec<_>>());

    // The runtime reads them back; the same images give the same file.
    let info = dlvp_runtime::Detector::load(&out, &Default::default())
        .unwrap()
        .info()
        .thresholds
        .unwrap();
    assert_eq!(
        (info.image, info.images, info.false_alarm),
        (stored, 20, 0.1)
    );
    let again = dir.path().join("again.onnx");
    assert!(threshold(&model, &good, "0.1", &again).status.success());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn too_few_images_a_bad_rate_and_an_unreadable_image_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let good = good_images(dir.path(), 10);
    let out = dir.path().join("out.onnx");
    let few = threshold(&model, &good, "0.05", &out);
    assert_fails(
        &few,
        1,
        "10 image(s) are too few for --false-alarm 0.05: the guarantee needs at least 19",
    );
    let bad = threshold(&model, &good, "1", &out);
    assert_fails(
        &bad,
        1,
        "--false-alarm: the false-alarm rate must be between 0 and 1",
    );
    let broken = good.join("fabric/train/good/zz_broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    let unreadable = threshold(&model, &good, "0.2", &out);
    assert_fails(&unreadable, 1, "zz_broken.png");
    std::fs::remove_file(&broken).unwrap();
    // A graph without the contract's anomaly_map output cannot give a pixel threshold.
    let no_map = dir.path().join("no map.onnx");
    std::fs::write(
        &no_map,
        dlvp_test_support::onnx_edit::edited(&model, |m| {
            m.graph
                .as_mut()
                .unwrap()
                .output
                .retain(|o| o.name != "anomaly_map")
        }),
    )
    .unwrap();
    let missing = threshold(&no_map, &good, "0.2", &out);
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("the graph has no output `anomaly_map`"),
        "{}",
        stderr(&missing)
    );
    assert!(!out.exists(), "a refused run wrote {}", out.display());
}

#[test]
fn detect_decides_with_the_stored_thresholds_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let good = good_images(dir.path(), 20);
    let line = dir.path().join("line3.onnx");
    assert!(threshold(&model, &good, "0.1", &line).status.success());
    let stored = dlvp_runtime::Detector::load(&line, &Default::default())
        .unwrap()
        .info()
        .thresholds
        .unwrap();

    // Every line decides, NG exactly where the score is above the stored threshold.
    let lines = detect_json(&good, &line, "tract");
    assert_eq!(lines.len(), 20);
    let mut ng = 0;
    for l in &lines {
        let score = l["score"].as_f64().unwrap() as f32;
        let want = if score > stored.image { "NG" } else { "OK" };
        ng += (want == "NG") as usize;
        assert_eq!(l["decision"], want, "{l}");
        assert_eq!(l["threshold"].as_f64().unwrap() as f32, stored.image);
    }
    assert!(
        ng <= 2,
        "rank 19 of 20: at most the one above it (and ties) is NG, got {ng}"
    );

    // --fail-on-ng: 2 when any image is NG, else 0; --threshold overrides the stored one.
    let detect = |extra: &[&str]| {
        let mut args = vec![
            "detect",
            good.to_str().unwrap(),
            "--model",
            line.to_str().unwrap(),
            "--backend",
            "tract",
        ];
        args.extend_from_slice(extra);
        dlvp(&args)
    };
    // 0 and just below 1 are the ends of the accepted range (scores lie in [0, 1]).
    let strict = detect(&["--fail-on-ng", "--threshold=0"]);
    assert_eq!(strict.status.code(), Some(2), "{}", stderr(&strict));
    assert_eq!(stdout(&strict).matches("  NG").count(), 20);
    assert!(
        stderr(&strict).contains("decisions: 0 OK, 20 NG"),
        "{}",
        stderr(&strict)
    );
    let lenient = detect(&["--fail-on-ng", "--threshold", "0.9999999"]);
    assert_eq!(lenient.status.code(), Some(0), "{}", stderr(&lenient));
    assert_eq!(stdout(&lenient).matches("  OK").count(), 20);
    let calibrated = detect(&[]);
    assert!(
        stderr(&calibrated).contains(&format!(
            "decisions: {} OK, {ng} NG (NG: score above {}, the model's, calibrated on 20 good images",
            20 - ng,
            stored.image
        )),
        "{}",
        stderr(&calibrated)
    );

    // Masks are the map above the pixel threshold: none above 0.9999999, all above 0.
    let one = good.join("fabric/train/good/000.png");
    for (pixel, value) in [("0.9999999", 0u8), ("0", 255)] {
        let out = dir.path().join(format!("out{pixel}"));
        let run = dlvp(&[
            "detect",
            one.to_str().unwrap(),
            "--model",
            line.to_str().unwrap(),
            "--backend",
            "tract",
            &format!("--pixel-threshold={pixel}"),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
        let mask = image::open(out.join("000.mask.png")).unwrap().to_luma8();
        assert!(
            mask.pixels().all(|p| p[0] == value),
            "--pixel-threshold {pixel}"
        );
    }

    // --write chooses the files: the mask alone here.
    let only = dir.path().join("only-mask");
    let run = dlvp(&[
        "detect",
        one.to_str().unwrap(),
        "--model",
        line.to_str().unwrap(),
        "--backend",
        "tract",
        "--out",
        only.to_str().unwrap(),
        "--write",
        "mask",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let names: Vec<String> = std::fs::read_dir(&only)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["000.mask.png"]);

    // Without a threshold anywhere, asking for decisions is an error that says what to do.
    let none = dlvp(&[
        "detect",
        one.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "tract",
        "--fail-on-ng",
    ]);
    assert_fails(&none, 1, "--fail-on-ng needs an image threshold");
    let no_mask = dlvp(&[
        "detect",
        one.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "tract",
        "--out",
        dir.path().join("x").to_str().unwrap(),
        "--write",
        "map,mask",
    ]);
    assert_fails(&no_mask, 1, "--write mask needs a threshold");
    assert!(
        stderr(&none).contains("dlvp threshold"),
        "{}",
        stderr(&none)
    );
}

#[test]
fn a_triton_repository_gets_the_thresholds_in_its_graph_and_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let export = dlvp(&[
        "export",
        "--weights",
        run::golden_weights().to_str().unwrap(),
        "--triton-repo",
        repo.to_str().unwrap(),
        "--triton-kind",
        "cpu",
        "--triton-name",
        "line3",
    ]);
    assert!(export.status.success(), "{}", stderr(&export));
    let good = good_images(dir.path(), 10);
    let calibrate = || {
        dlvp(&[
            "threshold",
            "--triton-repo",
            repo.to_str().unwrap(),
            "--good",
            good.to_str().unwrap(),
            "--false-alarm",
            "0.1",
            "--backend",
            "tract",
        ])
    };
    let run = calibrate();
    assert!(run.status.success(), "{}", stderr(&run));
    let onnx = repo.join("line3/1/model.onnx");
    let stored = dlvp_runtime::Detector::load(&onnx, &Default::default())
        .unwrap()
        .info()
        .thresholds
        .unwrap();
    let config = std::fs::read_to_string(repo.join("line3/config.pbtxt")).unwrap();
    assert!(
        config.contains(&format!(
            "parameters {{ key: \"dlvp.threshold.image\" value {{ string_value: \"{}\" }} }}",
            stored.image
        )),
        "{config}"
    );
    assert!(config.contains("key: \"dlvp.threshold.false_alarm\" value { string_value: \"0.1\" }"));
    // Again on the same images: the same graph and config, each key stated once.
    let graph = std::fs::read(&onnx).unwrap();
    assert!(calibrate().status.success());
    assert_eq!(std::fs::read(&onnx).unwrap(), graph);
    assert_eq!(
        std::fs::read_to_string(repo.join("line3/config.pbtxt")).unwrap(),
        config
    );
    // A repository without the model named, and a folder that is no repository, are refused.
    let missing = dlvp(&[
        "threshold",
        "--triton-repo",
        repo.to_str().unwrap(),
        "--triton-name",
        "nope",
        "--good",
        good.to_str().unwrap(),
        "--false-alarm",
        "0.1",
    ]);
    assert_fails(&missing, 1, "nope/config.pbtxt is missing");
    let empty = dlvp(&[
        "threshold",
        "--triton-repo",
        good.to_str().unwrap(),
        "--good",
        good.to_str().unwrap(),
        "--false-alarm",
        "0.1",
    ]);
    assert_fails(&empty, 1, "no model folder with a config.pbtxt");
}

#[test]
fn defects_are_reported_at_the_threshold_as_dlvp_eval_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let good = good_images(dir.path(), 10);
    let data = dir.path().join("line");
    let made = dlvp(&[
        "demo-data",
        "--out",
        data.to_str().unwrap(),
        "--categories",
        "metal",
        "--count",
        "6",
        "--train-count",
        "0",
        "--size",
        "64",
        "--seed",
        "5",
    ]);
    assert!(made.status.success(), "{}", stderr(&made));
    let out = dir.path().join("out.onnx");
    let check = |defects: &Path, report: &Path| {
        let extra = [
            "--defects",
            defects.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ];
        run::threshold(&model, &good, "0.1", &out, "tract", &extra)
    };
    let decisions = |report: &Path| -> serde_json::Value {
        let metrics: serde_json::Value =
            serde_json::from_slice(&std::fs::read(report.join("metrics.json")).unwrap()).unwrap();
        assert!(report.join("report.html").is_file());
        metrics["decisions_all"].clone()
    };

    // An MVTec category: its own test/good images count the false alarms (2 good, 4 defects).
    let mvtec = dir.path().join("mvtec-report");
    let run = check(&data.join("metal"), &mvtec);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stdout(&run).contains("Decisions at threshold"),
        "{}",
        stdout(&run)
    );
    let all = decisions(&mvtec);
    assert_eq!(
        (
            all["detected"]["of"].as_u64(),
            all["false_alarms"]["of"].as_u64()
        ),
        (Some(4), Some(2))
    );
    assert!(!stdout(&run).contains("calibration images"));

    // A plain folder of defects: the calibration images stand in for the good ones, and it says so.
    let flat = dir.path().join("flat-report");
    let run = check(&data.join("metal/test/scratch"), &flat);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stdout(&run).contains("are the calibration images"),
        "{}",
        stdout(&run)
    );
    let scratches = std::fs::read_dir(data.join("metal/test/scratch"))
        .unwrap()
        .count() as u64;
    let all = decisions(&flat);
    assert_eq!(
        (
            all["detected"]["of"].as_u64(),
            all["false_alarms"]["of"].as_u64()
        ),
        (Some(scratches), Some(10))
    );
    // The report agrees with `detect` on every calibration image, whatever the batch: the
    // threshold stands a margin clear of their scores.
    for batch in ["1", "3", "8"] {
        let run = dlvp(&[
            "detect",
            good.to_str().unwrap(),
            "--model",
            out.to_str().unwrap(),
            "--backend",
            "tract",
            "--json",
            "--batch",
            batch,
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
        let ng = stdout(&run).matches("\"decision\":\"NG\"").count() as u64;
        assert_eq!(
            all["false_alarms"]["count"].as_u64(),
            Some(ng),
            "batch {batch}: {}",
            stdout(&run)
        );
    }

    // A folder without images is refused before anything is scored or written.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = check(&empty, &dir.path().join("none"));
    assert_fails(&run, 1, "--defects");
    assert!(!dir.path().join("none").exists());
}

/// A threshold that would decide every part the same way — NaN, infinite, at or above 1, below
/// 0, or not a number at all — is refused by every flag that takes one, naming the flag, before
/// any image is scored (it once passed every part: `--threshold=nan` said OK to a hole).
#[rstest::rstest]
#[case::nan("nan", "not a number")]
#[case::upper_nan("NaN", "not a number")]
#[case::infinite("inf", "would pass every part")]
#[case::one("1", "would pass every part")]
#[case::above("1.5", "would pass every part")]
#[case::negative("-0.1", "would make every part NG")]
#[case::minus_infinite("-inf", "would make every part NG")]
#[case::text("abc", "is not a number")]
#[case::empty("", "is not a number")]
fn a_threshold_that_cannot_decide_is_refused(#[case] value: &str, #[case] problem: &str) {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("part.png");
    image::RgbImage::from_pixel(32, 32, image::Rgb([90, 90, 90]))
        .save(&image)
        .unwrap();
    let image = image.to_str().unwrap();
    let runs = [
        (
            "--threshold",
            vec!["detect", image, "--backend", "tract", "--fail-on-ng"],
        ),
        (
            "--pixel-threshold",
            vec!["detect", image, "--backend", "tract"],
        ),
        (
            "--threshold",
            vec!["eval", "--data", image, "--backend", "tract"],
        ),
    ];
    for (flag, mut args) in runs {
        // As one word (`--threshold=-1`) and as two (`--threshold -1`, a negative number).
        let given = format!("{flag}={value}");
        if value.is_empty() {
            args.push(&given);
        } else {
            args.extend([flag, value]);
        }
        let run = dlvp(&args);
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(flag) && err.contains(problem),
            "{args:?}: {err}"
        );
        assert!(stdout(&run).is_empty(), "{args:?} scored something");
    }
}

/// The usage line says a destination is required, and a Triton repository that was never
/// written says which command writes it.
#[test]
fn the_destination_is_in_the_usage_and_a_missing_repository_says_how_to_write_it() {
    let help = dlvp(&["threshold", "--help"]);
    assert!(
        stdout(&help).contains("<--out <OUT>|--triton-repo <DIR>>"),
        "{}",
        stdout(&help)
    );
    let dir = tempfile::tempdir().unwrap();
    let good = good_images(dir.path(), 10);
    let repo = dir.path().join("repo");
    let run = dlvp(&[
        "threshold",
        "--good",
        good.to_str().unwrap(),
        "--false-alarm",
        "0.1",
        "--triton-repo",
        repo.to_str().unwrap(),
    ]);
    assert_fails(&run, 1, "no such folder");
    assert!(
        stderr(&run).contains("dlvp export --weights CKPT --triton-repo"),
        "{}",
        stderr(&run)
    );
}
