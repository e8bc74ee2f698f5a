//! `dlvp demo-data`, `dlvp eval` and `dlvp bench` end to end through the binary, with the golden
//! tiny model (random weights: the figures are not good, but they must be real and well-formed).

use std::path::Path;

use dlvp_test_support::run;
use run::{assert_fails, dlvp, exported_golden, files_under, stderr, stdout};

fn demo_data(out: &Path, extra: &[&str]) {
    let mut args = vec![
        "demo-data",
        "--out",
        out.to_str().unwrap(),
        "--count",
        "6",
        "--train-count",
        "1",
        "--size",
        "64",
    ];
    args.extend_from_slice(extra);
    let run = dlvp(&args);
    assert!(run.status.success(), "{}", stderr(&run));
}

/// `dlvp eval` of `data` with `model` on tract, reports into `out`.
fn eval(data: &Path, model: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ];
    args.extend(["--backend", "tract", "--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    dlvp(&args)
}

#[test]
fn demo_data_is_deterministic_per_seed_and_in_the_mvtec_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    demo_data(&a, &["--categories", "wood,tile", "--seed", "3"]);
    demo_data(&b, &["--categories", "wood,tile", "--seed", "3"]);
    demo_data(&c, &["--categories", "wood,tile", "--seed", "4"]);
    let (fa, fb, fc) = (files_under(&a), files_under(&b), files_under(&c));
    assert_eq!(fa, fb, "same seed, different bytes");
    assert_eq!(fa.len(), fc.len());
    assert_ne!(fa, fc, "another seed gave the same images");
    let names: Vec<String> = fa.iter().map(|(p, _)| p.display().to_string()).collect();
    for expected in [
        "wood/train/good/000.png",
        "wood/test/good/000.png",
        "wood/test/crack/000.png",
        "wood/ground_truth/crack/000_mask.png",
        "tile/test/chip/000.png",
        "demo-data.json",
    ] {
        assert!(
            names.contains(&expected.to_string()),
            "{expected} not in {names:?}"
        );
    }
    // 6 test images per category: 2 good, 4 defective, each with a mask; 1 train image.
    assert_eq!(
        names.iter().filter(|n| n.starts_with("wood/test/")).count(),
        6
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("wood/ground_truth/"))
            .count(),
        4
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("demo-data.json")).unwrap()).unwrap();
    assert_eq!(manifest["categories"]["wood"]["test_good"], 2);
    assert!(
        !names.iter().any(|n| n.contains(".tmp")),
        "temporary files left: {names:?}"
    );

    let again = dlvp(&[
        "demo-data",
        "--out",
        a.to_str().unwrap(),
        "--categories",
        "wood",
    ]);
    assert_fails(&again, 1, "already exists; pass --force");
    let bad = dlvp(&[
        "demo-data",
        "--out",
        a.to_str().unwrap(),
        "--categories",
        "glass",
    ]);
    assert_fails(&bad, 1, "unknown category \"glass\"");
}

#[test]
fn eval_on_demo_data_writes_every_report_with_real_figures() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    demo_data(&data, &["--categories", "metal,leather", "--seed", "9"]);
    let model = exported_golden(dir.path());
    let out = dir.path().join("eval");
    let run = eval(&data, &model, &out, &["--batch", "4"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let table = stdout(&run);
    assert!(
        table.starts_with("| category | images | anomalous | image AUROC |"),
        "{table}"
    );
    assert!(
        table.contains("| leather | 6 | 4 |") && table.contains("| **mean** | 12 | 8 |"),
        "{table}"
    );

    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["backend"], "tract");
    for cat in metrics["categories"].as_array().unwrap() {
        for (key, _) in dlvp_eval::report::COLUMNS {
            let v = cat["metrics"][key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key} undefined: {cat}"));
            assert!((0.0..=1.0).contains(&v), "{key} = {v}");
        }
        let [lo, hi] = [0, 1].map(|i| cat["pixel_intervals"]["pixel_auroc"][i].as_f64().unwrap());
        let auroc = cat["metrics"]["pixel_auroc"].as_f64().unwrap();
        assert!(
            lo <= auroc && auroc <= hi && hi - lo < 1e-2,
            "{lo} {auroc} {hi}"
        );
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert_eq!(scores.lines().count(), 13);
    assert!(scores.lines().nth(1).unwrap().starts_with("leather,"));
    for png in ["roc.png", "pr.png", "pixel_roc.png"] {
        image::open(out.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<table id=\"metrics\">")
            && html.matches("data:image/png;base64,").count() >= 3 + 2 * 2 * 2
    );

    // At a threshold, the false alarms and detections are the scores above it, counted.
    let rows: Vec<(bool, f32)> = scores
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2] == "anomaly", f[3].parse().unwrap())
        })
        .collect();
    let mut sorted: Vec<f32> = rows.iter().map(|r| r.1).collect();
    sorted.sort_by(f32::total_cmp);
    // Midway between two scores: scores.csv rounds them, the comparison must not hinge on it.
    let t = (sorted[6] + sorted[7]) / 2.0;
    assert!(sorted[7] - sorted[6] > 1e-5, "{sorted:?}");
    let count = |defective: bool| rows.iter().filter(|r| r.0 == defective && r.1 > t).count();
    let at = dir.path().join("at");
    let run = eval(&data, &model, &at, &["--threshold", &t.to_string()]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stdout(&run).contains(&format!("Decisions at threshold {t} (--threshold)")),
        "{}",
        stdout(&run)
    );
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(at.join("metrics.json")).unwrap()).unwrap();
    let all = &metrics["decisions_all"];
    assert_eq!(all["false_alarms"]["count"], count(false) as u64, "{all}");
    assert_eq!(all["false_alarms"]["of"], 4);
    assert_eq!(all["detected"]["count"], count(true) as u64, "{all}");
    assert_eq!(all["detected"]["of"], 8);
    assert!(std::fs::read_to_string(at.join("report.html"))
        .unwrap()
        .contains("<table id=\"decisions\">"));
}

#[test]
fn eval_reports_undefined_metrics_and_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    demo_data(&data, &["--categories", "wood,fabric", "--seed", "2"]);
    // wood: only good images left; fabric: one mask deleted.
    for defect in ["crack", "hole", "stain", "scratch"] {
        let _ = std::fs::remove_dir_all(data.join("wood/test").join(defect));
    }
    std::fs::remove_file(data.join("fabric/ground_truth/hole/000_mask.png")).unwrap();
    let model = exported_golden(dir.path());
    let out = dir.path().join("eval");
    let run = eval(&data, &model, &out, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("wood: only normal images; image metrics undefined"),
        "{err}"
    );
    assert!(
        err.contains("000_mask.png is missing; left out of the pixel metrics"),
        "{err}"
    );
    assert!(
        stdout(&run).contains("| wood | 2 | 0 | n/a | n/a | n/a | n/a | n/a | n/a |"),
        "{}",
        stdout(&run)
    );
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    let wood = &metrics["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "wood")
        .unwrap()["metrics"];
    assert!(wood["image_auroc"].is_null() && wood["aupro"].is_null());
    assert!(
        metrics["mean"]["image_auroc"].is_number(),
        "the mean covers the categories where it is defined"
    );

    let missing = dlvp(&[
        "eval",
        "--data",
        dir.path().join("nope").to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    assert_fails(&missing, 1, "nope: not a folder");
    let wrong_cat = dlvp(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--categories",
        "glass",
        "--model",
        model.to_str().unwrap(),
    ]);
    assert_fails(&wrong_cat, 1, "no category \"glass\" (have: fabric, wood)");
}

/// An image that cannot be read is left out of the figures but not of the report: metrics.json
/// (its category's warnings and `left_out`), scores.csv (a row, no score, the error) and
/// report.html each name it, and the run exits 1 — before, only stderr did.
#[test]
fn a_left_out_image_is_named_in_every_report_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    demo_data(&data, &["--categories", "metal", "--seed", "9"]);
    let broken = data.join("metal/test/good/001.png");
    let bytes = std::fs::read(&broken).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let model = exported_golden(dir.path());
    let out = dir.path().join("eval");
    let run = eval(&data, &model, &out, &[]);
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(
        err.contains("001.png: cannot read image") && err.contains("left out"),
        "{err}"
    );
    assert!(
        stdout(&run).contains("**1 image left out**"),
        "{}",
        stdout(&run)
    );

    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    let metal = &metrics["categories"][0];
    assert_eq!(metal["images"], 5, "the scored ones");
    assert!(
        metal["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("001.png: cannot read image")),
        "{metal}"
    );
    let left_out = metrics["left_out"].as_array().unwrap();
    assert_eq!(left_out.len(), 1, "{left_out:?}");
    assert_eq!(left_out[0]["category"], "metal");
    assert!(left_out[0]["image"]
        .as_str()
        .unwrap()
        .ends_with("metal/test/good/001.png"));
    assert!(left_out[0]["error"]
        .as_str()
        .unwrap()
        .starts_with("cannot read image"));

    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    let lines: Vec<&str> = scores.lines().collect();
    assert_eq!(lines[0], "category,defect,label,score,image,error");
    assert_eq!(lines.len(), 7, "a row for each of the 6 images: {scores}");
    let row: Vec<&str> = lines
        .iter()
        .find(|l| l.contains("good/001.png"))
        .unwrap_or_else(|| panic!("no row for 001.png: {scores}"))
        .splitn(6, ',')
        .collect();
    assert_eq!(row[..4], ["metal", "good", "normal", ""], "{row:?}");
    assert!(row[5].contains("cannot read image"), "{row:?}");
    assert!(lines[1..]
        .iter()
        .filter(|l| !l.contains("001.png"))
        .all(|l| l.ends_with(',')));

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<h2 id=\"left-out\">Left out</h2>"),
        "no Left out section"
    );
    assert!(html.contains("metal/test/good/001.png</code>"));
}

/// `--data` given one category's folder (the usual slip) says what to pass instead.
#[test]
fn eval_of_a_category_folder_says_to_pass_its_parent_and_the_category() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    demo_data(&data, &["--categories", "wood", "--seed", "1"]);
    let model = dir.path().join("never-opened.onnx");
    let run = eval(&data.join("wood"), &model, &dir.path().join("eval"), &[]);
    assert_fails(
        &run,
        1,
        &format!(
            "one category's folder (it holds test/), not a dataset root: pass `--data {} --categories wood`",
            data.display()
        ),
    );
}

/// The report renders in a real browser: headless Chromium takes a screenshot that shows the
/// table and plots (not a blank page).
#[test]
fn the_report_renders_in_headless_chromium() {
    let Some(chromium) = dlvp_test_support::gate::chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    demo_data(&data, &["--categories", "tile", "--seed", "5"]);
    let model = exported_golden(dir.path());
    let out = dir.path().join("eval");
    let run = eval(&data, &model, &out, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let shot = dir.path().join("shot.png");
    let result = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,2600",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", out.join("report.html").display()))
        .output()
        .unwrap();
    let img = image::open(&shot)
        .unwrap_or_else(|e| {
            panic!(
                "no screenshot ({e}): {}",
                String::from_utf8_lossy(&result.stderr)
            )
        })
        .to_rgb8();
    let pixels = img.pixels().count() as f64;
    let non_white = img
        .pixels()
        .filter(|p| p.0.iter().any(|&c| c < 200))
        .count() as f64;
    let coloured = img
        .pixels()
        .filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 60)
        .count() as f64;
    // Text and table lines are dark; the plot curves and overlays are saturated colour.
    assert!(
        non_white / pixels > 0.02,
        "only {:.3} of the screenshot is not white",
        non_white / pixels
    );
    assert!(
        coloured / pixels > 0.005,
        "only {:.4} of the screenshot is coloured (plots/overlays missing?)",
        coloured / pixels
    );
}

#[test]
fn bench_reports_latency_throughput_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let run = dlvp(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "tract",
        "--batch",
        "2",
        "--iters",
        "3",
        "--warmup",
        "1",
        "--json",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let r: serde_json::Value = serde_json::from_str(stdout(&run).trim()).unwrap();
    assert_eq!(
        (
            r["backend"].as_str(),
            r["batch"].as_u64(),
            r["iters"].as_u64()
        ),
        (Some("tract"), Some(2), Some(3))
    );
    let lat = &r["latency_ms"];
    assert!(lat["p50"].as_f64().unwrap() > 0.0 && lat["p50"].as_f64() <= lat["p99"].as_f64());
    assert!(r["images_per_s"].as_f64().unwrap() > 0.0 && r["first_run_s"].as_f64().unwrap() > 0.0);
    assert!(r["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    let table = dlvp(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "tract",
        "--iters",
        "2",
    ]);
    assert!(
        stdout(&table).contains("latency      p50"),
        "{}",
        stdout(&table)
    );
}

#[test]
fn detect_expands_quoted_globs_and_reports_empty_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    demo_data(&data, &["--categories", "metal", "--seed", "1"]);
    let model = exported_golden(dir.path());
    let pattern = format!("{}/metal/test/**/000.png", data.display());
    let run = dlvp(&[
        "detect",
        &pattern,
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "tract",
        "--json",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let text = stdout(&run);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "good + 3 defect types: {lines:?}"); // good, scratch, stain, contamination
    let none = dlvp(&[
        "detect",
        &format!("{}/*.jpg", data.display()),
        "--model",
        model.to_str().unwrap(),
    ]);
    assert_fails(&none, 1, "the pattern matches no image");
}

/// `bench --input` times the graph on a given tensor and `--save-outputs` writes what it
/// returned: on the golden input, the golden outputs of the PyTorch reference (1e-4, Top-K exact).
#[rstest::rstest]
#[case::tract("tract")]
#[case::ort_cpu("ort-cpu")]
#[case::openvino("openvino")]
fn bench_on_a_given_input_saves_the_reference_outputs(#[case] backend: &str) {
    if !available(backend) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let golden_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny/golden.safetensors");
    let saved = dir.path().join("outputs.safetensors");
    let run = dlvp(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--backend",
        backend,
        "--input",
        golden_path.to_str().unwrap(),
        "--save-outputs",
        saved.to_str().unwrap(),
        "--iters",
        "2",
        "--warmup",
        "0",
        "--json",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let r: serde_json::Value = serde_json::from_str(stdout(&run).trim()).unwrap();
    let golden_bytes = std::fs::read(&golden_path).unwrap();
    let golden = safetensors::SafeTensors::deserialize(&golden_bytes).unwrap();
    let batch = golden.tensor("image").unwrap().shape()[0] as u64;
    assert_eq!(r["batch"].as_u64(), Some(batch), "the batch is the input's");
    let saved_bytes = std::fs::read(&saved).unwrap();
    let out = safetensors::SafeTensors::deserialize(&saved_bytes).unwrap();
    let f32s = |t: safetensors::tensor::TensorView| -> Vec<f32> {
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    for name in ["anomaly_score", "anomaly_map"] {
        let (a, b) = (out.tensor(name).unwrap(), golden.tensor(name).unwrap());
        assert_eq!(a.shape(), b.shape(), "{name}");
        let worst = f32s(a)
            .iter()
            .zip(f32s(b))
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-4, "{name}: {worst:e} from the reference");
    }
    let (a, b) = (
        out.tensor("topk_indices").unwrap(),
        golden.tensor("topk_indices").unwrap(),
    );
    assert_eq!(
        (a.dtype(), a.shape(), a.data()),
        (b.dtype(), b.shape(), b.data())
    );

    // A tensor of the wrong size is refused by name, and nothing is saved.
    let wrong = dir.path().join("wrong.safetensors");
    let zeros = vec![0u8; 4 * 3 * 8 * 8];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 3, 8, 8], &zeros)
            .unwrap();
    std::fs::write(
        &wrong,
        safetensors::serialize(vec![("image", view)], None).unwrap(),
    )
    .unwrap();
    let refused = dlvp(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "tract",
        "--input",
        wrong.to_str().unwrap(),
        "--save-outputs",
        dir.path().join("no.safetensors").to_str().unwrap(),
    ]);
    assert_fails(
        &refused,
        1,
        "wrong.safetensors: `image` [1, 3, 8, 8] does not fit",
    );
    assert!(!dir.path().join("no.safetensors").exists());

    // A damaged file gets the checkpoint reader's message, naming the file.
    let damaged = dir.path().join("damaged.safetensors");
    std::fs::write(&damaged, b"this is not a tensor file").unwrap();
    let refused = dlvp(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "tract",
        "--input",
        damaged.to_str().unwrap(),
    ]);
    assert_fails(
        &refused,
        1,
        "damaged.safetensors: safetensors header length",
    );
}

/// The same command twice gives byte-identical JSON lines, overlays and maps.
#[rstest::rstest]
#[case::tract("tract")]
#[case::ort_cpu("ort-cpu")]
#[case::openvino("openvino")]
fn detect_twice_gives_byte_identical_json_and_maps(#[case] backend: &str) {
    if !available(backend) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/samples");
    let out = dir.path().join("out");
    let args = [
        "detect",
        samples.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--backend",
        backend,
    ];
    let run = |extra: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(extra);
        let r = dlvp(&all);
        assert!(r.status.success(), "{}", stderr(&r));
        (stdout(&r), files_under(&out))
    };
    let first = run(&[
        "--json",
        "--threshold",
        "0.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    let second = run(&[
        "--json",
        "--threshold",
        "0.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(first.0.lines().count(), 10);
    assert!(first.0 == second.0, "JSON differs between runs");
    assert_eq!(first.1.len(), 30, "overlay, map and mask per image");
    assert!(first.1 == second.1, "output files differ between runs");
}

/// `--threads` reaches every CPU backend: a one-thread run succeeds and reports its count.
#[rstest::rstest]
#[case::tract("tract")]
#[case::ort_cpu("ort-cpu")]
#[case::openvino("openvino")]
fn bench_runs_with_the_thread_count_it_is_given(#[case] backend: &str) {
    if !available(backend) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let run = dlvp(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--backend",
        backend,
        "--threads",
        "1",
        "--iters",
        "2",
        "--warmup",
        "0",
        "--json",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let r: serde_json::Value = serde_json::from_str(stdout(&run).trim()).unwrap();
    assert_eq!(r["cpu_threads"].as_u64(), Some(1));
    assert_eq!(r["backend"].as_str(), Some(backend));
}

/// Whether the test command provides `backend` here (the gates skip or fail as they are told).
fn available(backend: &str) -> bool {
    match backend {
        "ort-cpu" => dlvp_test_support::gate::onnxruntime().is_some(),
        "openvino" => dlvp_test_support::gate::openvino().is_some(),
        _ => true,
    }
}

/// An `--embed-preprocess` graph (input `image_u8`) runs through `detect` and `bench` on every
/// backend and scores the sample images as the float graph does (within 1e-4, Top-K exact);
/// `bench --input` takes an `image_u8` tensor for it and refuses a float one by name.
#[rstest::rstest]
#[case::tract("tract")]
#[case::ort_cpu("ort-cpu")]
#[case::openvino("openvino")]
fn an_image_u8_graph_detects_as_the_float_graph(#[case] backend: &str) {
    if !available(backend) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let float_model = exported_golden(dir.path());
    let u8_model = dir.path().join("tiny_u8.onnx");
    run::export_with(&run::golden_weights(), &u8_model, &["--embed-preprocess"]);
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/samples");
    let (float, u8_graph) = (
        run::detect_json(&samples, &float_model, backend),
        run::detect_json(&samples, &u8_model, backend),
    );
    assert_eq!(float.len(), 10);
    assert_eq!(float.len(), u8_graph.len());
    for (a, b) in float.iter().zip(&u8_graph) {
        assert_eq!(a["image"], b["image"]);
        assert_eq!(a["topk"], b["topk"], "{}", a["image"]);
        let (x, y) = (a["score"].as_f64().unwrap(), b["score"].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-4, "{}: {x} vs {y}", a["image"]);
    }

    let size = 56;
    let pixels: Vec<u8> = (0..2 * size * size * 3)
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    let write = |name: &str, dtype, shape: Vec<usize>, data: &[u8]| {
        let path = dir.path().join(format!("{name}.safetensors"));
        let view = safetensors::tensor::TensorView::new(dtype, shape, data).unwrap();
        std::fs::write(
            &path,
            safetensors::serialize(vec![(name, view)], None).unwrap(),
        )
        .unwrap();
        path
    };
    let input = write(
        "image_u8",
        safetensors::Dtype::U8,
        vec![2, size, size, 3],
        &pixels,
    );
    let bench =
        |input: &Path| run::bench_once(&u8_model, backend, &["--input", input.to_str().unwrap()]);
    assert_eq!(run::json_report(&bench(&input))["batch"].as_u64(), Some(2));
    let floats = vec![0u8; 4 * 2 * 3 * size * size];
    let float_input = write(
        "image",
        safetensors::Dtype::F32,
        vec![2, 3, size, size],
        &floats,
    );
    assert_fails(
        &bench(&float_input),
        1,
        "image.safetensors: `image` [2, 3, 56, 56] does not fit",
    );
}

/// `bench --backend openvino --ov-cache DIR` reports both load times, compiling and from the
/// cache, whether DIR starts empty or filled.
#[test]
fn bench_reports_openvino_loads_with_and_without_its_cache() {
    if !available("openvino") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let cache = dir.path().join("ov-cache");
    for round in ["empty", "filled"] {
        let report = run::json_report(&run::bench_once(
            &model,
            "openvino",
            &["--ov-cache", cache.to_str().unwrap()],
        ));
        for key in ["load_s", "load_compile_s"] {
            assert!(
                report[key].as_f64().is_some_and(|s| s > 0.0),
                "{round}: {key} in {report}"
            );
        }
        assert!(
            std::fs::read_dir(&cache).unwrap().next().is_some(),
            "{round}: the cache folder is filled"
        );
    }
    // Without --ov-cache there is one load, and no compile figure.
    let report = run::json_report(&run::bench_once(&model, "openvino", &[]));
    assert!(report["load_compile_s"].is_null(), "{report}");
}
