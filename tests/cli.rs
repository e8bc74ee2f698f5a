//! The `dlvp` binary end to end: exit codes, one-line errors, and the acceptance cases of
//! `dlvp spec` and `dlvp weights check`.

use std::path::{Path, PathBuf};

use checkpoint::{dlvp_metadata, tensors_for, tiny_spec, write, Tensor};
use dlvp_test_support::{checkpoint, run};
use rstest::rstest;
use run::{assert_fails, dlvp, exported_golden, golden_weights, stderr, stdout};

fn spec_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("model-spec")
        .join(file)
}

#[test]
fn all_shipped_specs_validate() {
    let files = [
        "dlvp-clip-vit-l14-518.yaml",
        "dlvp-clip-vit-b16-224.yaml",
        "tiny.yaml",
    ]
    .map(spec_path);
    let args: Vec<&str> = ["spec", "validate"]
        .into_iter()
        .chain(files.iter().map(|p| p.to_str().unwrap()))
        .collect();
    let out = dlvp(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains("dlvp-clip-vit-l14-518: ViT 24×1024 p14 @ 518 px, 37×37 grid"),
        "{text}"
    );
}

#[rstest]
#[case::not_multiple(
    "image_size: 56",
    "image_size: 57",
    "image_size: 57 is not a multiple of vision.patch_size 8"
)]
#[case::unknown_field(
    "embed_dim: 32",
    "embed_dim: 32\nembed_dims: 32",
    "unknown field `embed_dims`"
)]
#[case::yaml_syntax(
    "top_k: 4",
    "top_k: 4\n\tbad: 1",
    "found a tab character that violates indentation at line 25"
)]
#[case::heads(
    "heads: 4",
    "heads: 3",
    "vision.heads: 3 does not divide vision.width 64"
)]
#[case::top_k("top_k: 4", "top_k: 0", "slfs.top_k: must be at least 1")]
fn an_invalid_spec_fails_naming_the_file_and_field(
    #[case] from: &str,
    #[case] to: &str,
    #[case] expected: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad spec ü.yaml");
    let text = std::fs::read_to_string(spec_path("tiny.yaml")).unwrap();
    assert!(text.contains(from));
    std::fs::write(&bad, text.replacen(from, to, 1)).unwrap();
    let good = spec_path("tiny.yaml");
    let out = dlvp(&[
        "spec",
        "validate",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_fails(&out, 1, expected);
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: {}: ", bad.display())),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        stdout(&out).contains("tiny.yaml: ok"),
        "the valid file is still reported"
    );
}

#[test]
fn spec_show_prints_the_resolved_spec() {
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("partial.yaml");
    std::fs::write(
        &partial,
        "name: b16\nimage_size: 224\nvision:\n  patch_size: 16\n",
    )
    .unwrap();
    let out = dlvp(&["spec", "show", partial.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains("visual_static_layers: 9"),
        "defaults are filled in: {shown}"
    );
    let resolved = dir.path().join("resolved.yaml");
    std::fs::write(&resolved, &shown).unwrap();
    assert!(dlvp(&["spec", "validate", resolved.to_str().unwrap()])
        .status
        .success());

    let out = dlvp(&[
        "spec",
        "show",
        "--format",
        "json",
        partial.to_str().unwrap(),
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["vision"]["patch_size"], 16);
    assert_eq!(json["text"]["width"], 768);
}

#[rstest]
#[case::no_subcommand(&[])]
#[case::unknown_subcommand(&["frobnicate"])]
#[case::validate_without_files(&["spec", "validate"])]
#[case::bad_format(&["spec", "show", "--format", "xml", "x.yaml"])]
fn bad_usage_exits_2(#[case] args: &[&str]) {
    let out = dlvp(args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_missing_spec_file_is_a_failure_not_a_panic() {
    assert_fails(
        &dlvp(&["spec", "show", "/nonexistent/tiny.yaml"]),
        1,
        "error: /nonexistent/tiny.yaml: cannot read spec",
    );
}

fn tiny_checkpoint(
    dir: &Path,
    edit: impl FnOnce(&mut std::collections::BTreeMap<String, Tensor>),
    with_spec: bool,
) -> PathBuf {
    let spec = tiny_spec();
    let mut tensors = tensors_for(&spec);
    edit(&mut tensors);
    let path = dir.join("tiny.safetensors");
    write(&path, &tensors, with_spec.then(|| dlvp_metadata(&spec)));
    path
}

#[test]
fn weights_check_passes_a_complete_checkpoint_using_its_embedded_spec() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(dir.path(), |_| {}, true);
    let out = dlvp(&["weights", "check", ckpt.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("format dlvp-clip/1, spec dlvp-clip-tiny (from the checkpoint's metadata)"),
        "{text}"
    );
    assert!(text.contains("ok: all"), "{text}");
}

#[test]
fn weights_check_names_a_missing_an_extra_and_a_mis_shaped_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(
        dir.path(),
        |t| {
            t.remove("dlvp.mlop.text_static");
            t.insert("dlvp.mlop.bonus".into(), Tensor::seeded(&[2], 0));
            t.insert(
                "transformer.resblocks.1.mlp.c_fc.weight".into(),
                Tensor::seeded(&[127, 32], 0),
            );
        },
        true,
    );
    let out = dlvp(&["weights", "check", ckpt.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("missing     dlvp.mlop.text_static: expected shape [2, 4, 32]"),
        "{text}"
    );
    assert!(text.contains("unused      dlvp.mlop.bonus: [2]"), "{text}");
    assert!(text.contains("mis-shaped  transformer.resblocks.1.mlp.c_fc.weight: found [127, 32], expected [128, 32]"), "{text}");
    assert!(text.contains("3 problem(s)"), "{text}");

    let out = dlvp(&["weights", "check", "--json", ckpt.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["report"]["problems"].as_array().unwrap().len(), 3);
}

#[test]
fn weights_check_needs_a_spec_when_the_checkpoint_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(dir.path(), |_| {}, false);
    assert_fails(
        &dlvp(&["weights", "check", ckpt.to_str().unwrap()]),
        1,
        "carries no `spec` metadata; pass --spec FILE",
    );
    let tiny = spec_path("tiny.yaml");
    let out = dlvp(&[
        "weights",
        "check",
        ckpt.to_str().unwrap(),
        "--spec",
        tiny.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("format none (plain OpenCLIP?)"));
}

#[test]
fn weights_check_against_another_spec_warns_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(dir.path(), |_| {}, true);
    let b16 = spec_path("dlvp-clip-vit-b16-224.yaml");
    let out = dlvp(&[
        "weights",
        "check",
        ckpt.to_str().unwrap(),
        "--spec",
        b16.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("warning:"), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("mis-shaped  visual.proj: found [64, 32], expected [768, 512]"),
        "{}",
        stdout(&out)
    );
}

#[rstest]
#[case::missing_file("missing.safetensors", None, "cannot read checkpoint")]
#[case::text_file("notes.safetensors", Some(&b"this is not a checkpoint at all"[..]), "(not a safetensors file?)")]
#[case::empty_file("empty.safetensors", Some(&b""[..]), "0 bytes, fewer than the 8-byte header length")]
fn weights_check_on_a_bad_file_fails_in_one_line(
    #[case] name: &str,
    #[case] content: Option<&[u8]>,
    #[case] expected: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    if let Some(bytes) = content {
        std::fs::write(&path, bytes).unwrap();
    }
    let out = dlvp(&["weights", "check", path.to_str().unwrap()]);
    assert_fails(&out, 1, expected);
    assert!(stderr(&out).contains(&path.display().to_string()));
    assert_eq!(stderr(&out).lines().count(), 1);
}

#[test]
fn the_reference_golden_checkpoint_checks_clean() {
    // Written by `python -m dlvp_reference.golden` (f16 storage, open_clip's own tensor names).
    let ckpt = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny/weights.safetensors");
    let out = dlvp(&["weights", "check", ckpt.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("spec dlvp-clip-tiny (from the checkpoint's metadata)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn export_writes_a_deterministic_graph_that_inspect_describes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.onnx"), dir.path().join("b.onnx"));
    for out in [&a, &b] {
        let run = dlvp(&[
            "export",
            "--weights",
            golden_weights().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--verify",
        ]);
        assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
        assert!(
            stdout(&run).contains("verify tract (batch 2"),
            "{}",
            stdout(&run)
        );
        if dlvp_test_support::gate::onnxruntime().is_some() {
            assert!(
                stdout(&run).contains("verify onnxruntime-cpu ("),
                "{}",
                stdout(&run)
            );
        }
        if dlvp_test_support::gate::openvino().is_some() {
            assert!(
                stdout(&run).contains("verify openvino-cpu ("),
                "{}",
                stdout(&run)
            );
        }
    }
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "same checkpoint, same bytes"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        4,
        "two graphs and their sidecars, no temporary files: {names:?}"
    );

    let run = dlvp(&["inspect", "--json", a.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(json["opset"][0][1], 17);
    // Fixed dims are JSON numbers, the symbolic batch its name.
    assert_eq!(
        json["inputs"][0]["shape"],
        serde_json::json!(["B", 3, 56, 56])
    );
    assert_eq!(json["outputs"][2]["name"], "topk_indices");
    assert_eq!(json["outputs"][2]["dtype"], "int64");
    assert_eq!(json["metadata"]["dlvp.image_size"], "56");
    // The sidecar says what the graph says: names, dtypes and shapes of every input and output.
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("a.onnx.json")).unwrap())
            .unwrap();
    assert_eq!(sidecar["model"], "a.onnx");
    assert_eq!(sidecar["preprocess"]["image_size"], 56);
    assert_eq!(sidecar["spec_sha256"].as_str().unwrap().len(), 64);
    for kind in ["inputs", "outputs"] {
        let graph = json[kind].as_array().unwrap();
        let side = sidecar[kind].as_array().unwrap();
        assert_eq!(graph.len(), side.len(), "{kind}");
        for (g, s) in graph.iter().zip(side) {
            assert_eq!(g["name"], s["name"]);
            let dtype = s["dtype"].as_str().unwrap().replace("float32", "float");
            assert_eq!(g["dtype"].as_str().unwrap(), dtype, "{}", s["name"]);
            let dims: Vec<serde_json::Value> = s["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| if d == "batch" { "B".into() } else { d.clone() })
                .collect();
            assert_eq!(g["shape"], serde_json::json!(dims), "{}", s["name"]);
        }
    }
    // The 49408-row token table is folded away: the graph is far smaller than the checkpoint's f32 size.
    assert!(
        json["parameters"].as_i64().unwrap() < 400_000,
        "{}",
        json["parameters"]
    );
}

#[test]
fn export_of_a_checkpoint_missing_a_tensor_names_it_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(
        dir.path(),
        |t| {
            t.remove("dlvp.hfd.2.high.weight");
        },
        true,
    );
    let out = dir.path().join("model.onnx");
    let run = dlvp(&[
        "export",
        "--weights",
        ckpt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_fails(
        &run,
        1,
        "tensor `dlvp.hfd.2.high.weight` is missing (expected shape [64, 64])",
    );
    assert!(stderr(&run).contains("hfd.2") && !out.exists());
}

#[test]
fn export_keeps_the_previous_file_when_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.onnx");
    std::fs::write(&out, b"previous model").unwrap();
    let ckpt = tiny_checkpoint(
        dir.path(),
        |t| {
            t.insert("visual.proj".into(), Tensor::seeded(&[64, 31], 0));
        },
        true,
    );
    let run = dlvp(&[
        "export",
        "--weights",
        ckpt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_fails(
        &run,
        1,
        "tensor `visual.proj` has shape [64, 31], expected [64, 32]",
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"previous model");
}

#[rstest]
#[case::text(&b"not a model"[..], "not an ONNX model")]
#[case::empty(&b""[..], "the model has no graph")]
fn inspect_refuses_what_is_not_onnx(#[case] content: &[u8], #[case] expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, content).unwrap();
    assert_fails(&dlvp(&["inspect", path.to_str().unwrap()]), 1, expected);
}

#[rstest]
#[case::tract("tract")]
#[case::auto("auto")]
fn detect_scores_valid_images_reports_bad_ones_and_leaves_no_stray_files(#[case] backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let images = dir.path().join("images with spaces");
    std::fs::create_dir_all(images.join("nested")).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/preprocess");
    std::fs::copy(fixtures.join("80x64_rgb.png"), images.join("part ü.png")).unwrap();
    std::fs::copy(fixtures.join("64x48_l.png"), images.join("nested/gray.png")).unwrap();
    std::fs::write(images.join("corrupt.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    std::fs::write(images.join("notes.txt"), b"not an image, not looked at").unwrap();
    let out = dir.path().join("out");
    let run = dlvp(&[
        "detect",
        images.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--backend",
        backend,
        "--out",
        out.to_str().unwrap(),
        "--threshold",
        "0.5",
        "--json",
        "--batch",
        "2",
        "--show-topk",
    ]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("corrupt.png: cannot read image"),
        "{}",
        stderr(&run)
    );
    assert!(!stderr(&run).contains("panicked"));
    let lines: Vec<serde_json::Value> = stdout(&run)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every image has a record; the unreadable one's says why.
    assert_eq!(lines.len(), 3, "{}", stdout(&run));
    let (errors, lines): (Vec<_>, Vec<_>) =
        lines.into_iter().partition(|l| l.get("error").is_some());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0]["image"]
        .as_str()
        .unwrap()
        .ends_with("corrupt.png"));
    assert!(errors[0]["error"]
        .as_str()
        .unwrap()
        .contains("cannot read image"));
    assert!(errors[0].get("score").is_none() && errors[0].get("decision").is_none());
    for line in &lines {
        let score = line["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert_eq!(
            line["label"],
            if score > 0.5 { "anomalous" } else { "normal" }
        );
        assert_eq!(line["topk"].as_array().unwrap().len(), 4);
        let provider = line["provider"].as_str().unwrap();
        assert!(
            provider == "tract" || provider.ends_with("ExecutionProvider"),
            "{provider}"
        );
        for key in ["overlay", "map", "mask"] {
            assert!(Path::new(line[key].as_str().unwrap()).is_file(), "{key}");
        }
    }
    let overlay = image::open(out.join("part ü.overlay.png")).unwrap();
    assert_eq!(
        (overlay.width(), overlay.height()),
        (80, 64),
        "outputs at the original image size"
    );
    // Outputs mirror each image's path inside the folder argument.
    let mut written: Vec<String> = run::files_under(&out)
        .into_iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "nested/gray.map.png",
            "nested/gray.mask.png",
            "nested/gray.overlay.png",
            "part ü.map.png",
            "part ü.mask.png",
            "part ü.overlay.png"
        ]
    );
}

#[test]
fn detect_on_tract_and_auto_give_the_same_scores() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/preprocess/37x53_rgb.png");
    let score = |backend: &str| -> f64 {
        let run = dlvp(&[
            "detect",
            image.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--backend",
            backend,
            "--json",
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
        serde_json::from_str::<serde_json::Value>(stdout(&run).trim()).unwrap()["score"]
            .as_f64()
            .unwrap()
    };
    assert!((score("tract") - score("auto")).abs() <= 1e-4);
}

#[test]
fn detect_with_a_gpu_backend_on_a_cpu_library_fails_naming_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/preprocess/37x53_rgb.png");
    let run = dlvp(&[
        "detect",
        image.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "ort-cuda",
    ]);
    assert_eq!(run.status.code(), Some(1));
    let err = stderr(&run);
    assert!(
        err.contains("CUDAExecutionProvider") || err.contains("no ONNX Runtime library found"),
        "{err}"
    );
}

#[rstest]
#[case::not_onnx(b"not a model".to_vec(), "not a")]
#[case::onnx_without_metadata(Vec::new(), "not a dlvp graph")]
fn detect_refuses_a_model_that_is_not_a_dlvp_graph(#[case] bytes: Vec<u8>, #[case] expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.onnx");
    std::fs::write(&model, bytes).unwrap();
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/preprocess/37x53_rgb.png");
    assert_fails(
        &dlvp(&[
            "detect",
            image.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ]),
        1,
        expected,
    );
}

#[test]
fn export_creates_the_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new/folder/tiny.onnx");
    let run = dlvp(&[
        "export",
        "--weights",
        golden_weights().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(out.is_file());
}

/// `bench --pipeline`: the images end to end through the staged pipeline, every stage timed, an
/// unreadable image counted and the run failed.
#[test]
fn bench_times_the_pipeline_stage_by_stage() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for entry in std::fs::read_dir(run::repo().join("fixtures/samples")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, images.join(path.file_name().unwrap())).unwrap();
    }
    let bench = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--model",
            model.to_str().unwrap(),
            "--backend",
            "tract",
        ];
        args.extend_from_slice(&[
            "--pipeline",
            images.to_str().unwrap(),
            "--json",
            "--batch",
            "4",
        ]);
        args.extend_from_slice(extra);
        dlvp(&args)
    };
    let ok = bench(&[]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let report: serde_json::Value = serde_json::from_str(stdout(&ok).trim()).unwrap();
    assert_eq!(
        (report["images"].as_u64(), report["failed"].as_u64()),
        (Some(10), Some(0))
    );
    assert!(report["images_per_s"].as_f64().unwrap() > 0.0);
    for stage in ["decode", "resize", "infer", "finish", "deliver"] {
        assert!(
            report["ms_per_image"][stage].as_f64().unwrap() >= 0.0,
            "{stage}"
        );
    }
    std::fs::write(images.join("broken.png"), b"not a png").unwrap();
    let broken = bench(&[]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        stderr(&broken).contains("broken.png"),
        "{}",
        stderr(&broken)
    );
}
