//! What `dlvp detect` writes and says per input, through the binary: output names a user can
//! predict without the JSON (each image's path relative to the argument that found it, the
//! extension kept only where two images share a stem, a clash refused before anything is
//! scored), the output folder never scored again, a JSON record for every input (an `error`
//! for those that could not be scored), and warnings for images a whole-image run distorts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dlvp_test_support::run;
use run::{dlvp, exported_golden, files_under, stderr, stdout};

/// The tiny golden graph, exported once for the file.
fn model() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = exported_golden(dir.path());
        (dir, path)
    });
    path
}

fn picture(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 80]))
        .save(path)
        .unwrap();
}

fn detect(args: &[&Path], extra: &[&str]) -> std::process::Output {
    let model = model().to_str().unwrap();
    let mut all: Vec<&str> = vec!["detect"];
    all.extend(args.iter().map(|p| p.to_str().unwrap()));
    all.extend(["--model", model, "--backend", "tract"]);
    all.extend_from_slice(extra);
    dlvp(&all)
}

fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn written(out: &Path) -> Vec<String> {
    files_under(out)
        .into_iter()
        .map(|(p, _)| p.display().to_string())
        .collect()
}

#[test]
fn outputs_mirror_each_images_path_and_keep_extensions_only_where_stems_clash() {
    let dir = tempfile::tempdir().unwrap();
    let wood = dir.path().join("wood");
    for p in [
        "test/good/000.png",
        "test/hole/000.png",
        "test/hole/001.png",
    ] {
        picture(&wood.join(p), 40, 40);
    }
    picture(&wood.join("test/rgb/rgb.bmp"), 40, 40);
    picture(&wood.join("test/rgb/rgb.webp"), 40, 40);
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();
    let run = detect(
        &[&wood.join("test")],
        &["--out", o, "--json", "--write", "overlay"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        written(&out),
        [
            "good/000.overlay.png",
            "hole/000.overlay.png",
            "hole/001.overlay.png",
            "rgb/rgb.bmp.overlay.png",
            "rgb/rgb.webp.overlay.png",
        ]
    );
    // The JSON names the same files.
    for line in json_lines(&run) {
        let overlay = PathBuf::from(line["overlay"].as_str().unwrap());
        let image = PathBuf::from(line["image"].as_str().unwrap());
        let relative = image.strip_prefix(wood.join("test")).unwrap();
        let stem = match relative.extension().and_then(|e| e.to_str()) {
            Some("png") => relative.with_extension(""),
            _ => relative.to_path_buf(),
        };
        assert_eq!(
            overlay,
            out.join(format!("{}.overlay.png", stem.display())),
            "{line}"
        );
    }
    // A file named directly is named by its file name.
    let single = dir.path().join("single");
    let run = detect(
        &[&wood.join("test/hole/001.png")],
        &["--out", single.to_str().unwrap(), "--write", "map"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(written(&single), ["001.map.png"]);
}

#[test]
fn two_images_that_would_share_outputs_are_refused_before_scoring() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    picture(&a.join("000.png"), 40, 40);
    picture(&b.join("000.png"), 40, 40);
    let out = dir.path().join("o");
    let run = detect(&[&a, &b], &["--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("a/000.png") && err.contains("b/000.png") && err.contains("would both write"),
        "{err}"
    );
    assert!(stdout(&run).is_empty(), "nothing is scored");
    assert!(!out.exists(), "nothing is written");
    // Without --out nothing is written, so nothing clashes.
    assert!(detect(&[&a, &b], &[]).status.success());
}

#[test]
fn the_output_folder_is_never_scored_on_a_second_run() {
    let dir = tempfile::tempdir().unwrap();
    let today = dir.path().join("today");
    picture(&today.join("000.png"), 40, 40);
    picture(&today.join("001.png"), 40, 40);
    let out = today.join("out");
    let o = out.to_str().unwrap();
    let first = detect(&[&today], &["--out", o, "--json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let before = written(&out);
    assert_eq!(before.len(), 4, "{before:?}");
    let second = detect(&[&today], &["--out", o, "--json"]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(json_lines(&second).len(), 2, "{}", stdout(&second));
    assert_eq!(written(&out), before, "no output of an output");
    assert!(
        stderr(&second).contains("4 image(s) under the output folder")
            && stderr(&second).contains("never scores its own outputs"),
        "{}",
        stderr(&second)
    );
    // Only outputs left: nothing to score, and the message says why.
    let only = detect(&[&out], &["--out", o]);
    assert_eq!(only.status.code(), Some(1));
    assert!(
        stderr(&only).contains("no images to score") && stderr(&only).contains("never scored"),
        "{}",
        stderr(&only)
    );
}

#[test]
fn every_input_gets_a_json_record_errors_included() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("part.png");
    picture(&good, 40, 40);
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\n cut short").unwrap();
    let missing = dir.path().join("missing.png");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let run = detect(&[&good, &broken, &missing, &empty], &["--json"]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let lines = json_lines(&run);
    assert_eq!(lines.len(), 4, "{}", stdout(&run));
    let record = |path: &Path| {
        lines
            .iter()
            .find(|l| l["image"] == path.display().to_string())
            .unwrap_or_else(|| panic!("no record for {}: {lines:?}", path.display()))
    };
    assert!(record(&good)["score"].is_number());
    assert!(record(&good).get("error").is_none());
    for (path, says) in [
        (&broken, "cannot read image"),
        (&missing, "no such file or folder"),
        (
            &empty,
            "no images in this folder or its subfolders (searched for .png",
        ),
    ] {
        let r = record(path);
        let error = r["error"].as_str().unwrap();
        assert!(error.contains(says), "{error}");
        assert!(r.get("score").is_none(), "{r}");
    }
}

#[test]
fn an_empty_folder_alone_is_named_with_the_extensions_searched() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("emptydir");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), b"not an image").unwrap();
    let run = detect(&[&empty], &[]);
    assert_eq!(run.status.code(), Some(1));
    let err = stderr(&run);
    assert!(
        err.contains("emptydir: no images in this folder")
            && err.contains(".jpg")
            && err.contains(".webp"),
        "{err}"
    );
}

#[test]
fn images_a_whole_image_run_distorts_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let (wide, tiny, fine) = (
        dir.path().join("wide.png"),
        dir.path().join("tiny.png"),
        dir.path().join("fine.png"),
    );
    picture(&wide, 400, 30);
    picture(&tiny, 3, 3);
    picture(&fine, 40, 36);
    let run = detect(&[&wide, &tiny, &fine], &["--json"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("wide.png: 400×30 is squashed 13.3× along its width")
            && err.contains("--tile"),
        "{err}"
    );
    assert!(err.contains("tiny.png: 3×3 is enlarged"), "{err}");
    assert!(!err.contains("fine.png"), "{err}");
    let lines = json_lines(&run);
    assert!(lines[0]["warnings"][0]
        .as_str()
        .unwrap()
        .contains("squashed"));
    assert!(lines[2].get("warnings").is_none());
    // Tiled, the image keeps its shape: no warning.
    let tiled = detect(&[&wide], &["--tile"]);
    assert!(tiled.status.success(), "{}", stderr(&tiled));
    assert!(!stderr(&tiled).contains("squashed"), "{}", stderr(&tiled));
}
