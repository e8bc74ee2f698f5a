//! The C++ example (examples/cpp) against the Rust runtime: on inputs already at the model's
//! H×W its scores, maps and Top-K equal `dlvp detect --backend ort-cpu` (≤ 1e-5), for the float
//! `image` graph and the `--embed-preprocess` `image_u8` graph, and on images it resizes itself
//! with dlvp/resize.hpp (byte-equal to Pillow on every preprocessing fixture); bad models fail
//! by name.
//!
//! Needs the built example: `DLVP_CPP_EXAMPLE=path/to/dlvp_detect` (scripts/test builds it with
//! examples/cpp/build.sh and sets this; without it these tests skip and say so, unless
//! `DLVP_REQUIRE_CPP_EXAMPLE=1`, which scripts/test sets wherever it can install the toolchain,
//! and always in CI: then they fail).

use std::path::{Path, PathBuf};
use std::process::Command;

use dlvp_onnx_proto as pb;
use dlvp_runtime::detector::{BackendChoice, Detection, Detector, DetectorOptions};
use dlvp_test_support::{onnx_edit, run};
use onnx_edit::{dim, edited, input_dims};
use run::{dlvp, export_with, golden_weights, stderr, stdout};

fn example() -> Option<PathBuf> {
    dlvp_test_support::gate::cpp_example()
}

fn export(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let model = dir.join(name);
    export_with(&golden_weights(), &model, extra);
    model
}

/// Test images: two at the tiny model's 56×56, one that must be resized.
fn images(dir: &Path) -> (Vec<PathBuf>, PathBuf) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/preprocess");
    let gradient = dir.join("gradient.png");
    image::RgbImage::from_fn(56, 56, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 3) as u8, ((x * y) % 256) as u8])
    })
    .save(&gradient)
    .unwrap();
    (
        vec![fixtures.join("56x56_rgb.png"), gradient],
        fixtures.join("80x64_rgb.png"),
    )
}

struct CppResult {
    score: f32,
    topk: Vec<i64>,
    map: Vec<f32>,
}

fn run_cpp(bin: &Path, model: &Path, images: &[PathBuf], out: &Path) -> Vec<CppResult> {
    run_cpp_as(bin, model, images, out, "bgr")
}

/// `dlvp_detect --as LAYOUT`: the frames handed to the detector as BGR, BGRA or mono8.
fn run_cpp_as(
    bin: &Path,
    model: &Path,
    images: &[PathBuf],
    out: &Path,
    layout: &str,
) -> Vec<CppResult> {
    run_cpp_with(bin, model, images, out, &["--batch", "2", "--as", layout])
}

fn run_cpp_with(
    bin: &Path,
    model: &Path,
    images: &[PathBuf],
    out: &Path,
    options: &[&str],
) -> Vec<CppResult> {
    let run = Command::new(bin)
        .arg(model)
        .args(images)
        .args(options)
        .args(["--json", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    stdout(&run)
        .lines()
        .zip(images)
        .map(|(line, image)| {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(json["image"], image.to_str().unwrap());
            let stem = image.file_stem().unwrap().to_str().unwrap();
            let raw = std::fs::read(out.join(format!("{stem}.map.f32"))).unwrap();
            CppResult {
                score: json["score"].as_f64().unwrap() as f32,
                topk: json["topk"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect(),
                map: raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
            }
        })
        .collect()
}

/// What `dlvp detect --backend ort-cpu` computes (the same Detector, in process, for the maps).
fn rust_detections(model: &Path, images: &[PathBuf]) -> Vec<Detection> {
    let detector = Detector::load(
        model,
        &DetectorOptions {
            backend: BackendChoice::OrtCpu,
            ..Default::default()
        },
    )
    .unwrap();
    // One batch, as the C++ example and `dlvp detect --batch 2` run them.
    let loaded: Vec<_> = images
        .iter()
        .map(|p| dlvp_runtime::preprocess::load_rgb8(p).unwrap())
        .collect();
    detector.detect_batch(&loaded).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn at_the_model_size_the_cpp_example_equals_dlvp_detect() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let float_model = export(dir.path(), "tiny.onnx", &[]);
    let u8_model = export(dir.path(), "tiny_u8.onnx", &["--embed-preprocess"]);
    let (at_size, _) = images(dir.path());
    let reference = rust_detections(&float_model, &at_size);

    // The CLI's scores, as printed by `dlvp detect --json`, are the Detector's.
    let mut args: Vec<&str> = vec!["detect"];
    args.extend(at_size.iter().map(|p| p.to_str().unwrap()));
    let model_arg = float_model.to_str().unwrap();
    args.extend([
        "--model",
        model_arg,
        "--backend",
        "ort-cpu",
        "--json",
        "--batch",
        "2",
    ]);
    let cli = dlvp(&args);
    assert!(cli.status.success(), "{}", stderr(&cli));
    for (line, r) in stdout(&cli).lines().zip(&reference) {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        let score = json["score"].as_f64().unwrap() as f32;
        assert!((score - r.score).abs() <= 1e-6, "{score} vs {}", r.score);
    }

    for (model, label) in [(&float_model, "image f32"), (&u8_model, "image_u8")] {
        let out = dir.path().join(format!("out-{label}"));
        let cpp = run_cpp(&bin, model, &at_size, &out);
        for (c, r) in cpp.iter().zip(&reference) {
            let map = r.map.iter().copied().collect::<Vec<f32>>();
            let (ds, dm) = ((c.score - r.score).abs(), max_diff(&c.map, &map));
            eprintln!("{label}: score diff {ds:.2e}, map max diff {dm:.2e}");
            assert!(ds <= 1e-5 && dm <= 1e-5, "{label}: score {ds}, map {dm}");
            assert_eq!(c.topk, r.topk, "{label}");
        }
    }
}

/// Images not at the model's size are resized by dlvp/resize.hpp, Pillow's filter bit for bit:
/// the C++ detector then equals `dlvp detect` on them too (≤ 1e-5, Top-K exact), and BGR input
/// (OpenCV's order) resizes as RGB does.
#[test]
fn resized_images_score_as_dlvp_detect_scores_them() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = export(dir.path(), "tiny.onnx", &[]);
    let (_, to_resize) = images(dir.path());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/preprocess");
    let more = vec![
        to_resize,
        fixtures.join("300x41_rgb.png"),
        fixtures.join("120x120_rgb.png"),
    ];
    let reference = rust_detections(&model, &more);
    let cpp = run_cpp(&bin, &model, &more, &dir.path().join("out"));
    for ((c, r), name) in cpp.iter().zip(&reference).zip(&more) {
        let map: Vec<f32> = r.map.iter().copied().collect();
        let (ds, dm) = ((c.score - r.score).abs(), max_diff(&c.map, &map));
        eprintln!(
            "{}: score diff {ds:.2e}, map max diff {dm:.2e}",
            name.display()
        );
        assert!(
            ds <= 1e-5 && dm <= 1e-5,
            "{}: score {ds}, map {dm}",
            name.display()
        );
        assert_eq!(c.topk, r.topk, "{}", name.display());
    }
}

/// Mono8 and BGRA frames (what industrial cameras and GPU pipelines deliver) score as the same
/// pictures in RGB: gray is replicated and alpha dropped as §1 says, at the model's size and
/// resized, on the float and the `image_u8` graph.
#[test]
fn mono8_and_bgra_frames_score_as_their_rgb_pictures() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/preprocess");
    let gray_at_size = dir.path().join("gray56.png");
    image::GrayImage::from_fn(56, 56, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8]))
        .save(&gray_at_size)
        .unwrap();
    let gray = vec![gray_at_size, fixtures.join("64x48_l.png")];
    let colour = vec![
        fixtures.join("56x56_rgb.png"),
        fixtures.join("80x64_rgb.png"),
    ];
    for (model, label) in [
        (export(dir.path(), "tiny.onnx", &[]), "image f32"),
        (
            export(dir.path(), "tiny_u8.onnx", &["--embed-preprocess"]),
            "image_u8",
        ),
    ] {
        for (images, layout) in [(&gray, "gray"), (&colour, "bgra")] {
            let reference = rust_detections(&model, images);
            let out = dir.path().join(format!("out-{label}-{layout}"));
            for (c, r) in run_cpp_as(&bin, &model, images, &out, layout)
                .iter()
                .zip(&reference)
            {
                let map: Vec<f32> = r.map.iter().copied().collect();
                let (ds, dm) = ((c.score - r.score).abs(), max_diff(&c.map, &map));
                assert!(
                    ds <= 1e-5 && dm <= 1e-5,
                    "{label} {layout}: score {ds}, map {dm}"
                );
                assert_eq!(c.topk, r.topk, "{label} {layout}");
            }
        }
    }
}

/// dlvp/resize.hpp against Pillow itself: every image of fixtures/preprocess, resized to 56×56
/// with both filters, byte-equal to what Pillow wrote into expected.safetensors.
#[test]
fn the_cpp_resize_is_byte_equal_to_pillow() {
    let Some(bin) = example() else { return };
    let check = bin.with_file_name("resize_check");
    assert!(
        check.is_file(),
        "{}: not built (examples/cpp/build.sh builds it)",
        check.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/preprocess/expected.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let expected = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut compared = 0;
    for (name, decoded) in expected.tensors() {
        let Some(stem) = name.strip_suffix(".decoded") else {
            continue;
        };
        let (h, w) = (decoded.shape()[0], decoded.shape()[1]);
        let input = dir.path().join(format!("{stem}.rgb"));
        std::fs::write(&input, decoded.data()).unwrap();
        for filter in ["bicubic", "bilinear"] {
            let want = expected.tensor(&format!("{stem}.{filter}")).unwrap();
            let (oh, ow) = (want.shape()[0], want.shape()[1]);
            let out = dir.path().join(format!("{stem}.{filter}.rgb"));
            let run = Command::new(&check)
                .arg(&input)
                .args([w.to_string(), h.to_string()])
                .arg(&out)
                .args([ow.to_string(), oh.to_string(), filter.to_string()])
                .output()
                .unwrap();
            assert!(run.status.success(), "{}", stderr(&run));
            let got = std::fs::read(&out).unwrap();
            let differ = got.iter().zip(want.data()).filter(|(a, b)| a != b).count();
            assert!(
                got.len() == want.data().len() && differ == 0,
                "{stem} {filter}: {differ} of {} bytes differ from Pillow",
                want.data().len()
            );
            compared += 1;
        }
    }
    assert!(compared >= 20, "only {compared} fixtures compared");
}

#[test]
fn bad_models_fail_by_name() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = export(dir.path(), "tiny.onnx", &[]);
    let (at_size, _) = images(dir.path());
    let no_metadata = dir.path().join("no metadata.onnx");
    std::fs::write(&no_metadata, edited(&model, |m| m.metadata_props.clear())).unwrap();
    let wrong_size = dir.path().join("wrong size.onnx");
    std::fs::write(
        &wrong_size,
        edited(&model, |m| input_dims(m)[3].value = dim(64)),
    )
    .unwrap();
    let missing = dir.path().join("missing.onnx");
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &std::fs::read(&model).unwrap()[..200]).unwrap();
    for (path, problem) in [
        (&missing, "cannot load the model: cannot open the model file"),
        (
            &truncated,
            "cannot load the model: not an ONNX model (a protobuf field runs past the end of the file)",
        ),
        (&no_metadata, "not a dlvp graph: no dlvp.format metadata"),
        (&wrong_size, "input `image` has shape [B, 3, 56, 64], but its metadata (image_size 56) needs [B, 3, S, S]"),
    ] {
        let run = Command::new(&bin).arg(path).arg(&at_size[0]).output().unwrap();
        assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
        let err = stderr(&run);
        assert!(
            err.contains(&format!("error: {}: {problem}", path.display())),
            "{err}"
        );
    }
}

/// Several detectors on one dlvp::Runtime (one shared ONNX Runtime thread pool), each run from
/// its own thread at the same time, give every image what one detector gives it.
#[test]
fn detectors_sharing_one_runtime_from_several_threads_agree() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = export(dir.path(), "tiny.onnx", &[]);
    let (mut many, resized) = images(dir.path());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/preprocess");
    many.extend([
        resized,
        fixtures.join("300x41_rgb.png"),
        fixtures.join("120x120_rgb.png"),
    ]);
    let one = run_cpp_with(
        &bin,
        &model,
        &many,
        &dir.path().join("one"),
        &["--batch", "1", "--threads", "2"],
    );
    let shared = run_cpp_with(
        &bin,
        &model,
        &many,
        &dir.path().join("shared"),
        &["--batch", "1", "--threads", "2", "--detectors", "3"],
    );
    assert_eq!(one.len(), many.len());
    for ((a, b), name) in one.iter().zip(&shared).zip(&many) {
        let (ds, dm) = ((a.score - b.score).abs(), max_diff(&a.map, &b.map));
        assert!(
            ds <= 1e-6 && dm <= 1e-6,
            "{}: score {ds}, map {dm}",
            name.display()
        );
        assert_eq!(a.topk, b.topk, "{}", name.display());
    }
}

/// A graph `dlvp threshold` calibrated: the C++ detector reads the stored threshold (the same f32
/// the runtime reads) and decides OK/NG as `dlvp detect` does; `--threshold` overrides it.
#[test]
fn the_cpp_detector_decides_at_the_stored_threshold() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = export(dir.path(), "tiny.onnx", &[]);
    let good = run::good_images(dir.path(), "good", 2, 56, 4);
    let line = dir.path().join("line.onnx");
    let calibrate = run::threshold(&model, &good, "0.1", &line, "ort-cpu", &[]);
    assert!(calibrate.status.success(), "{}", stderr(&calibrate));
    let stored = Detector::load(&line, &Default::default())
        .unwrap()
        .info()
        .thresholds
        .unwrap()
        .image;
    let (at_size, resized) = images(dir.path());
    let mut all = at_size;
    all.push(resized);
    let decisions = |extra: &[&str]| -> Vec<(f32, String, f32)> {
        let run = Command::new(&bin)
            .arg(&line)
            .args(&all)
            .arg("--json")
            .args(extra)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", stderr(&run));
        stdout(&run)
            .lines()
            .map(|l| {
                let j: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    j["score"].as_f64().unwrap() as f32,
                    j["decision"].as_str().unwrap().to_string(),
                    j["threshold"].as_f64().unwrap() as f32,
                )
            })
            .collect()
    };
    let rust = rust_detections(&line, &all);
    for ((score, decision, threshold), r) in decisions(&[]).iter().zip(&rust) {
        assert_eq!(*threshold, stored, "the stored f32, exactly");
        let want = if *score > stored { "NG" } else { "OK" };
        assert_eq!(decision, want);
        // As `dlvp detect` decides, wherever the scores (within 1e-5) are not at the threshold.
        if (r.score - stored).abs() > 1e-5 {
            assert_eq!(decision, if r.score > stored { "NG" } else { "OK" });
        }
    }
    // Every real score is above 0, so a threshold of 0 (the lowest one that can decide) makes
    // every part NG.
    for (_, decision, threshold) in decisions(&["--threshold", "0"]) {
        assert_eq!((decision.as_str(), threshold), ("NG", 0.0));
    }
    // Without a stored threshold, no decision is printed.
    let plain = Command::new(&bin)
        .arg(&model)
        .arg(&all[0])
        .arg("--json")
        .output()
        .unwrap();
    assert!(!stdout(&plain).contains("decision"), "{}", stdout(&plain));
}

/// `dlvp_detect --tile` (dlvp/tiling.hpp) equals the runtime's tiled inference on ONNX Runtime CPU
/// within 1e-5: the score, the number of tiles and the blended map at the image's size, at native
/// resolution and at half scale (which also resizes the frame and the map back).
#[test]
fn the_cpp_tiling_equals_dlvp_detect_tile() {
    use dlvp_runtime::tiling::{detect_tiled, TileOptions};
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = export(dir.path(), "tiny.onnx", &[]);
    let frame = dir.path().join("frame.png");
    let img = image::RgbImage::from_fn(200, 130, |x, y| {
        image::Rgb([
            (x * 3 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x * y) % 251) as u8,
        ])
    });
    img.save(&frame).unwrap();
    let detector = Detector::load(
        &model,
        &DetectorOptions {
            backend: BackendChoice::OrtCpu,
            ..Default::default()
        },
    )
    .unwrap();
    for (scale, overlap) in [("1", "0.25"), ("0.5", "0.5")] {
        let out = dir.path().join(format!("out-{scale}"));
        let run = Command::new(&bin)
            .arg(&model)
            .arg(&frame)
            .args([
                "--tile",
                "--tile-scale",
                scale,
                "--tile-overlap",
                overlap,
                "--batch",
                "4",
            ])
            .args(["--json", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", stderr(&run));
        let json: serde_json::Value = serde_json::from_str(stdout(&run).trim()).unwrap();
        let options = TileOptions {
            scale: scale.parse().unwrap(),
            overlap: overlap.parse().unwrap(),
        };
        let rust = detect_tiled(&detector, &img, &options, 4).unwrap();
        assert_eq!(
            json["tiles"].as_u64(),
            Some(rust.tiles.len() as u64),
            "{scale}"
        );
        let ds = (json["score"].as_f64().unwrap() as f32 - rust.score).abs();
        let raw = std::fs::read(out.join("frame.map.f32")).unwrap();
        let map: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let dm = max_diff(&map, &rust.map.iter().copied().collect::<Vec<_>>());
        eprintln!("scale {scale}: score diff {ds:.2e}, map max diff {dm:.2e}");
        assert!(
            ds <= 1e-5 && dm <= 1e-5,
            "scale {scale}: score {ds}, map {dm}"
        );
    }
}

/// A user's own CMake project (examples/cpp/tests/consumer) builds against dlvp::detector both
/// from the installed package (`cmake --install`, then find_package(dlvp CONFIG)) and by
/// add_subdirectory (which builds no example and needs no OpenCV), and scores as `dlvp detect`.
#[test]
fn a_users_cmake_project_builds_against_the_installed_package_and_by_add_subdirectory() {
    let Some(bin) = example() else { return };
    let build = bin.parent().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cpp");
    let dir = tempfile::tempdir().unwrap();
    let cmake = |args: &[&std::ffi::OsStr]| {
        let run = Command::new("cmake").args(args).output().unwrap();
        assert!(
            run.status.success(),
            "cmake {args:?}: {}{}",
            stdout(&run),
            stderr(&run)
        );
    };
    let prefix = dir.path().join("prefix");
    cmake(&[
        "--install".as_ref(),
        build.as_os_str(),
        "--prefix".as_ref(),
        prefix.as_os_str(),
    ]);
    assert!(prefix.join("include/dlvp/detector.hpp").is_file());

    // The ONNX Runtime this build found, for the add_subdirectory build (the installed package
    // records it itself).
    let cache = std::fs::read_to_string(build.join("CMakeCache.txt")).unwrap();
    let cached = |key: &str| {
        cache
            .lines()
            .find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|l| l.split_once('='))
                    .map(|(_, v)| v.to_string())
            })
            .unwrap_or_else(|| panic!("{key} not in {}", build.join("CMakeCache.txt").display()))
    };
    let (ort_include, ort_library) = (cached("ORT_INCLUDE_DIR:"), cached("ORT_LIBRARY:"));

    let model = export(dir.path(), "tiny.onnx", &[]);
    let picture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/preprocess/56x56_rgb.png");
    let pixels = dir.path().join("56x56.rgb");
    std::fs::write(&pixels, image::open(&picture).unwrap().to_rgb8().into_raw()).unwrap();
    let reference = &rust_detections(&model, &[picture])[0];

    let consumer = source.join("tests/consumer");
    let installed = dir.path().join("installed");
    let subdirectory = dir.path().join("subdirectory");
    let prefix_path = format!("-DCMAKE_PREFIX_PATH={}", prefix.display());
    let source_dir = format!("-DDLVP_SOURCE_DIR={}", source.display());
    let (ort_include, ort_library) = (
        format!("-DORT_INCLUDE_DIR={ort_include}"),
        format!("-DORT_LIBRARY={ort_library}"),
    );
    cmake(&[
        "-S".as_ref(),
        consumer.as_os_str(),
        "-B".as_ref(),
        installed.as_os_str(),
        prefix_path.as_ref(),
    ]);
    cmake(&[
        "-S".as_ref(),
        consumer.as_os_str(),
        "-B".as_ref(),
        subdirectory.as_os_str(),
        source_dir.as_ref(),
        ort_include.as_ref(),
        ort_library.as_ref(),
    ]);
    for folder in [&installed, &subdirectory] {
        cmake(&["--build".as_ref(), folder.as_os_str()]);
        let run = Command::new(folder.join("consumer"))
            .arg(&model)
            .arg(&pixels)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}: {}",
            folder.display(),
            stderr(&run)
        );
        let json: serde_json::Value = serde_json::from_str(stdout(&run).trim()).unwrap();
        assert_eq!(json["format"], "dlvp-clip-onnx/1");
        let score = json["score"].as_f64().unwrap() as f32;
        assert!(
            (score - reference.score).abs() <= 1e-5,
            "{}: {score} vs {}",
            folder.display(),
            reference.score
        );
        let topk: Vec<i64> = json["topk"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(topk, reference.topk, "{}", folder.display());
    }
    assert!(
        !subdirectory.join("dlvp/dlvp_detect").exists(),
        "add_subdirectory built the example program"
    );
}

/// `dlvp threshold`'s graph for these tests: the tiny model calibrated on a few good images.
fn calibrated(dir: &Path) -> PathBuf {
    let model = export(dir, "tiny.onnx", &[]);
    let good = run::good_images(dir, "good", 2, 56, 4);
    let line = dir.join("line.onnx");
    let calibrate = run::threshold(&model, &good, "0.1", &line, "ort-cpu", &[]);
    assert!(calibrate.status.success(), "{}", stderr(&calibrate));
    line
}

/// Sets (or adds) metadata `key`.
fn set_metadata(model: &mut pb::ModelProto, key: &str, value: &str) {
    match model.metadata_props.iter_mut().find(|p| p.key == key) {
        Some(entry) => entry.value = value.into(),
        None => model.metadata_props.push(pb::StringStringEntryProto {
            key: key.into(),
            value: value.into(),
        }),
    }
}

/// Stored thresholds that could not decide — what a hand edit or a corrupted file leaves — and the
/// words both front ends refuse the graph with when it loads: (key, value, problem).
const UNDECIDABLE: [(&str, &str, &str); 7] = [
    ("dlvp.threshold.image", "nan", "metadata dlvp.threshold.image is not a number"),
    ("dlvp.threshold.image", "inf", "metadata dlvp.threshold.image is not a number"),
    (
        "dlvp.threshold.image",
        "1.5",
        "metadata dlvp.threshold.image: 1.5 would pass every part: scores and map values lie in [0, 1], so a threshold must be at least 0 and below 1",
    ),
    (
        "dlvp.threshold.image",
        "-0.5",
        "metadata dlvp.threshold.image: -0.5 would make every part NG: scores and map values lie in [0, 1], so a threshold must be at least 0 and below 1",
    ),
    ("dlvp.threshold.pixel", "nan", "metadata dlvp.threshold.pixel is not a number"),
    (
        "dlvp.threshold.false_alarm",
        "0",
        "metadata dlvp.threshold.false_alarm is 0; expected a rate between 0 and 1 (exclusive)",
    ),
    (
        "dlvp.threshold.images",
        "0",
        "metadata dlvp.threshold.images is 0; expected a whole number of images, at least 1",
    ),
];

/// A calibrated graph whose stored thresholds were edited into ones that cannot decide (NaN would
/// pass every part, 1.5 too, -0.5 would fail every part; a false-alarm rate of 0 or 0 calibration
/// images is no calibration) is refused when it loads, by the C++ detector and by `dlvp detect`
/// alike: the same key, the same words, before any part is decided.
#[test]
fn both_front_ends_refuse_stored_thresholds_that_cannot_decide() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let line = calibrated(dir.path());
    let (at_size, _) = images(dir.path());
    for (key, value, problem) in UNDECIDABLE {
        let bad = dir.path().join(format!("{key} {value}.onnx"));
        std::fs::write(&bad, edited(&line, |m| set_metadata(m, key, value))).unwrap();
        let want = format!("{}: {problem}", bad.display());
        let cpp = Command::new(&bin)
            .arg(&bad)
            .arg(&at_size[0])
            .output()
            .unwrap();
        assert_eq!(
            cpp.status.code(),
            Some(1),
            "C++ {key}={value}: {}",
            stderr(&cpp)
        );
        assert!(
            stderr(&cpp).contains(&format!("error: {want}")),
            "C++ {key}={value}: {}",
            stderr(&cpp)
        );
        assert!(
            stdout(&cpp).is_empty(),
            "C++ {key}={value} decided: {}",
            stdout(&cpp)
        );
        let rust = dlvp(&[
            "detect",
            at_size[0].to_str().unwrap(),
            "--model",
            bad.to_str().unwrap(),
            "--backend",
            "tract",
            "--json",
        ]);
        assert!(
            matches!(rust.status.code(), Some(1 | 2)),
            "Rust {key}={value}: exit {:?}: {}",
            rust.status.code(),
            stderr(&rust)
        );
        assert!(
            stderr(&rust).contains(&want),
            "Rust {key}={value}: {}",
            stderr(&rust)
        );
    }
}

/// `dlvp_detect --threshold T` with a T that cannot decide (not a number, NaN, infinite, at or
/// above 1, below 0) is bad usage: exit 2 before the model loads, with the reason `dlvp detect`
/// gives for the same flag; nothing is scored.
#[test]
fn a_threshold_flag_that_cannot_decide_is_refused() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = export(dir.path(), "tiny.onnx", &[]);
    let (at_size, _) = images(dir.path());
    let range =
        "scores and map values lie in [0, 1], so a threshold must be at least 0 and below 1";
    for (value, why) in [
        (
            "abc",
            "\"abc\" is not a number; expected one in [0, 1)".to_string(),
        ),
        (
            "0x1p-1",
            "\"0x1p-1\" is not a number; expected one in [0, 1)".to_string(),
        ),
        (
            "nan",
            "NaN is not a number: a NaN threshold would pass every part".to_string(),
        ),
        ("inf", format!("inf would pass every part: {range}")),
        ("1", format!("1 would pass every part: {range}")),
        ("1.5", format!("1.5 would pass every part: {range}")),
        ("-1", format!("-1 would make every part NG: {range}")),
    ] {
        let cpp = Command::new(&bin)
            .arg(&model)
            .arg(&at_size[0])
            .args(["--threshold", value])
            .output()
            .unwrap();
        assert_eq!(
            cpp.status.code(),
            Some(2),
            "C++ --threshold {value}: {}",
            stderr(&cpp)
        );
        assert!(
            stderr(&cpp).contains(&format!("error: --threshold: {why}")),
            "C++ --threshold {value}: {}",
            stderr(&cpp)
        );
        assert!(
            stdout(&cpp).is_empty(),
            "C++ --threshold {value}: {}",
            stdout(&cpp)
        );
        // `--threshold=-1` in one word: clap takes a separate "-1" for an unknown flag, which it
        // refuses too, but without the reason compared here.
        let rust = dlvp(&[
            "detect",
            at_size[0].to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--backend",
            "tract",
            &format!("--threshold={value}"),
        ]);
        assert_eq!(
            rust.status.code(),
            Some(2),
            "Rust --threshold {value}: {}",
            stderr(&rust)
        );
        assert!(
            stderr(&rust).contains(&why),
            "Rust --threshold {value}: {}",
            stderr(&rust)
        );
    }
}

/// The graph with `anomaly_score` made NaN (an Add of a NaN constant after the node that
/// computes it): what a broken export, a bad weight or a GPU fault can return.
fn scoring_nan(model: &Path) -> Vec<u8> {
    edited(model, |m| {
        let graph = m.graph.as_mut().unwrap();
        let node = graph
            .node
            .iter_mut()
            .find(|n| n.output.iter().any(|o| o == "anomaly_score"))
            .expect("a node computes anomaly_score");
        for o in node.output.iter_mut().filter(|o| *o == "anomaly_score") {
            *o = "anomaly_score_before_nan".into();
        }
        graph.initializer.push(pb::TensorProto {
            name: "nan".into(),
            data_type: 1, // FLOAT
            float_data: vec![f32::NAN],
            ..Default::default()
        });
        graph.node.push(pb::NodeProto {
            op_type: "Add".into(),
            name: "make_the_score_nan".into(),
            input: vec!["anomaly_score_before_nan".into(), "nan".into()],
            output: vec!["anomaly_score".into()],
            ..Default::default()
        });
    })
}

/// A graph that returns a NaN score never passes a part: `dlvp_detect` decides it NG (its JSON
/// score null, as `dlvp detect --json` writes it), whole and in tiles (a NaN tile makes the
/// frame NaN, not the largest of the others), and `dlvp detect` decides the same.
#[test]
fn a_nan_score_is_ng_in_both_front_ends() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = export(dir.path(), "tiny.onnx", &[]);
    let broken = dir.path().join("scores nan.onnx");
    std::fs::write(&broken, scoring_nan(&model)).unwrap();
    let (at_size, _) = images(dir.path());
    let frame = dir.path().join("frame.png");
    image::RgbImage::from_fn(130, 90, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, 70])
    })
    .save(&frame)
    .unwrap();
    for (inputs, extra) in [
        (&at_size[..], &[][..]),
        (
            std::slice::from_ref(&frame),
            &["--tile", "--batch", "2"][..],
        ),
    ] {
        let cpp = Command::new(&bin)
            .arg(&broken)
            .args(inputs)
            .args(["--json", "--threshold", "0.5"])
            .args(extra)
            .output()
            .unwrap();
        assert!(cpp.status.success(), "{extra:?}: {}", stderr(&cpp));
        let lines: Vec<serde_json::Value> = stdout(&cpp)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), inputs.len(), "{}", stdout(&cpp));
        for line in &lines {
            assert!(line["score"].is_null(), "{extra:?}: {line}");
            assert_eq!(line["decision"], "NG", "{extra:?}: {line}");
        }
    }
    for (input, extra) in [
        (&at_size[0], &[][..]),
        (&frame, &["--tile", "--batch", "2"][..]),
    ] {
        let mut args = vec![
            "detect",
            input.to_str().unwrap(),
            "--model",
            broken.to_str().unwrap(),
            "--backend",
            "ort-cpu",
            "--json",
            "--threshold",
            "0.5",
        ];
        args.extend_from_slice(extra);
        let rust = dlvp(&args);
        let line: serde_json::Value = serde_json::from_str(stdout(&rust).trim())
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&rust), stderr(&rust)));
        assert!(line["score"].is_null(), "{extra:?}: {line}");
        assert_eq!(line["decision"], "NG", "{extra:?}: {line}");
    }
}

/// dlvp/detector.hpp's decision API, which `dlvp_detect` cannot reach (it refuses a bad
/// `--threshold` before it makes a detector): `decision_check` (examples/cpp/tests) checks that
/// `decide` makes a NaN score NG, that `set_threshold` throws for NaN, ±inf, 1, 1.5 and -0.01 in
/// `dlvp detect`'s words and leaves the detector's threshold as it was, and that 0 and the largest
/// f32 below 1 are taken.
#[test]
fn the_detector_api_refuses_thresholds_that_cannot_decide() {
    let Some(bin) = example() else { return };
    let check = bin.with_file_name("decision_check");
    assert!(
        check.is_file(),
        "{}: not built (examples/cpp/build.sh builds it)",
        check.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let model = export(dir.path(), "tiny.onnx", &[]);
    let run = Command::new(&check).arg(&model).output().unwrap();
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    assert_eq!(stdout(&run).trim(), "ok");
}
