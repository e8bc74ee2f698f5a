//! The bad-input matrix through the real binary: broken images and models of every kind a
//! production line or another team can hand `dlvp`, and one spec and one checkpoint per error
//! class of their readers (the exhaustive tables of those live beside the readers, in the
//! contract and exporter crates). Each refused case exits 1 or 2 with an `error:` line naming the
//! file and the problem, panics nowhere, and leaves no output file behind. Unusual but valid images (1×1, 16-bit, CMYK, grey+alpha, unicode
//! names) are scored instead.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use checkpoint::{dlvp_metadata, tensors_for, tiny_spec, write, write_raw, Tensor};
use dlvp_onnx_proto as pb;
use dlvp_test_support::{checkpoint, onnx_edit, png, run};
use onnx_edit::{dim, input_dims};
use prost::Message;
use rstest::rstest;
use run::{dlvp, export, golden_weights, stderr, stdout};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The tiny golden checkpoint exported once for the whole file.
fn tiny_model() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.onnx");
        export(&golden_weights(), &path);
        (dir, path)
    });
    path
}

/// The refusal contract: exit 1 or 2, an `error:` line with the file's name and `problem`, no
/// panic, and `out` (where outputs would go) holding nothing.
fn assert_refused(run: &Output, file: &Path, problem: &str, out: &Path) {
    let err = stderr(run);
    assert!(
        matches!(run.status.code(), Some(1 | 2)),
        "exit {:?}\nstdout: {}\nstderr: {err}",
        run.status.code(),
        stdout(run)
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    let name = file.file_name().unwrap().to_string_lossy();
    let line = err
        .lines()
        .find(|l| l.starts_with("error:") && l.contains(name.as_ref()))
        .unwrap_or_else(|| panic!("no `error:` line names {name}:\n{err}"));
    assert!(line.contains(problem), "expected {problem:?} in {line:?}");
    let left: Vec<_> = std::fs::read_dir(out)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "files left behind in {}: {left:?}",
        out.display()
    );
}

// ---------------------------------------------------------------- images

fn encoded(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn gradient() -> image::RgbImage {
    image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, 90])
    })
}

fn png_bytes() -> Vec<u8> {
    encoded(gradient().into(), image::ImageFormat::Png)
}

fn jpeg_bytes() -> Vec<u8> {
    encoded(gradient().into(), image::ImageFormat::Jpeg)
}

fn half(bytes: Vec<u8>) -> Vec<u8> {
    bytes[..bytes.len() / 2].to_vec()
}

fn detect(image: &Path, model: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "detect",
        image.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "tract",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    dlvp(&args)
}

#[rstest]
#[case::empty_file("empty.png", Vec::new(), "cannot read image")]
#[case::truncated_png("cut.png", half(png_bytes()), "cannot read image")]
#[case::truncated_jpeg("cut.jpg", half(jpeg_bytes()), "truncated JPEG")]
#[case::text_named_png("notes.png", b"a text file, not a picture\n".to_vec(), "cannot read image")]
#[case::decompression_bomb(
    "bomb.png",
    png::claiming(100_000, 100_000),
    "100000×100000 = 10000000000 pixels, more than the limit"
)]
fn a_bad_image_is_refused_by_name(
    #[case] name: &str,
    #[case] bytes: Vec<u8>,
    #[case] problem: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join(name);
    std::fs::write(&image, bytes).unwrap();
    let out = dir.path().join("out");
    let run = detect(&image, tiny_model(), &out, &[]);
    assert_refused(&run, &image, problem, &out);
}

#[test]
fn the_pixel_limit_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("big enough.png");
    std::fs::write(&image, png_bytes()).unwrap();
    let out = dir.path().join("out");
    let run = detect(&image, tiny_model(), &out, &["--max-pixels", "1000"]);
    assert_refused(
        &run,
        &image,
        "64×48 = 3072 pixels, more than the limit of 1000",
        &out,
    );
    // The library says what the limit is; the command names its option.
    assert!(
        stderr(&run).contains("more than the limit of 1000 (--max-pixels)"),
        "{}",
        stderr(&run)
    );
}

#[test]
fn a_missing_or_dangling_image_path_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let missing = dir.path().join("no such image.png");
    assert_refused(
        &detect(&missing, tiny_model(), &out, &[]),
        &missing,
        "no such file or folder",
        &out,
    );
    let dangling = dir.path().join("dangling.png");
    std::os::unix::fs::symlink(dir.path().join("gone.png"), &dangling).unwrap();
    assert_refused(
        &detect(&dangling, tiny_model(), &out, &[]),
        &dangling,
        "no such file or folder",
        &out,
    );
}

/// A file the process may not read. As root (how CI runs) permissions do not stop a read, so
/// `dlvp` then runs as the unprivileged user `nobody` (uid/gid 65534) from copies of the binary
/// and the model in a folder it can reach: the same `Permission denied` path in both cases.
#[test]
fn an_unreadable_image_is_named() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let mode = |path: &Path, bits: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits)).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    mode(dir.path(), 0o777);
    let image = dir.path().join("locked.png");
    std::fs::write(&image, png_bytes()).unwrap();
    mode(&image, 0o000);
    let out = dir.path().join("out");
    let run = if unsafe { libc::geteuid() } == 0 {
        let bin = dir.path().join("dlvp");
        std::fs::copy(env!("CARGO_BIN_EXE_dlvp"), &bin).unwrap();
        mode(&bin, 0o755);
        let model = dir.path().join("tiny.onnx");
        std::fs::copy(tiny_model(), &model).unwrap();
        mode(&model, 0o644);
        std::process::Command::new(&bin)
            .args([
                "detect",
                image.to_str().unwrap(),
                "--model",
                model.to_str().unwrap(),
            ])
            .args(["--backend", "tract", "--out", out.to_str().unwrap()])
            .env("HOME", dir.path())
            .uid(65534)
            .gid(65534)
            .output()
            .expect("run dlvp as nobody")
    } else {
        detect(&image, tiny_model(), &out, &[])
    };
    assert_refused(&run, &image, "Permission denied", &out);
}

/// Valid images of unusual kinds are scored like any other, outputs at their own size.
#[rstest]
#[case::one_pixel("1x1.png", image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(1, 1, image::Rgb([200, 10, 10]))), image::ImageFormat::Png)]
#[case::sixteen_bit_rgb(
    "rgb16.png",
    image::DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(40, 30, |x, y| image::Rgb([(x * 1500) as u16, (y * 2000) as u16, 40000]))),
    image::ImageFormat::Png
)]
#[case::grey_alpha(
    "grey alpha.png",
    image::DynamicImage::ImageLumaA8(image::ImageBuffer::from_fn(40, 30, |x, _| image::LumaA([(x * 6) as u8, 128]))),
    image::ImageFormat::Png
)]
#[case::unicode_and_spaces(
    "Prüfteil Nr 7 — 検査.png",
    image::DynamicImage::ImageRgb8(gradient()),
    image::ImageFormat::Png
)]
// Decoded by content, as Pillow does, whatever the extension says.
#[case::jpeg_named_png(
    "photo.png",
    image::DynamicImage::ImageRgb8(gradient()),
    image::ImageFormat::Jpeg
)]
fn an_unusual_valid_image_is_scored(
    #[case] name: &str,
    #[case] img: image::DynamicImage,
    #[case] format: image::ImageFormat,
) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("line 3 ✓");
    std::fs::create_dir(&folder).unwrap();
    let path = folder.join(name);
    std::fs::write(&path, encoded(img.clone(), format)).unwrap();
    assert_scored(&path, (img.width(), img.height()));
}

/// CMYK JPEGs come from print workflows; the image crate cannot write one, so this is the
/// reference's fixture (written by Pillow, checked against Pillow's decoding in the runtime tests).
#[test]
fn a_cmyk_jpeg_is_scored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cmyk.jpg");
    std::fs::copy(repo().join("fixtures/preprocess/40x30_cmyk.jpg"), &path).unwrap();
    assert_scored(&path, (40, 30));
}

fn assert_scored(path: &Path, size: (u32, u32)) {
    let out = path.parent().unwrap().join("out");
    let run = detect(path, tiny_model(), &out, &["--json"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let line: serde_json::Value = serde_json::from_str(stdout(&run).trim()).unwrap();
    let score = line["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score), "{score}");
    let overlay = image::open(line["overlay"].as_str().unwrap()).unwrap();
    assert_eq!((overlay.width(), overlay.height()), size);
}

// ---------------------------------------------------------------- specs

fn tiny_spec_text() -> String {
    std::fs::read_to_string(repo().join("model-spec/tiny.yaml")).unwrap()
}

fn spec_edit(from: &str, to: &str) -> String {
    let text = tiny_spec_text();
    assert!(text.contains(from), "{from:?} not in tiny.yaml");
    text.replacen(from, to, 1)
}

/// One case per error class of the spec reader (empty, parse, validation; a folder below): the
/// exhaustive tables are the contract crate's (`contract/tests/spec.rs`). Each goes through
/// `spec validate` and `export`, which must stop before writing anything.
#[rstest]
#[case::empty(String::new(), "the spec is empty")]
#[case::yaml_syntax(
    spec_edit("name: dlvp-clip-tiny", "name: \"dlvp-clip-tiny"),
    "did not find expected key at line"
)]
#[case::invalid(
    spec_edit("  heads: 4", "  heads: 5"),
    "vision.heads: 5 does not divide vision.width 64"
)]
fn a_bad_spec_is_refused_by_name(#[case] text: String, #[case] problem: &str) {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("line spec.yaml");
    std::fs::write(&spec, text).unwrap();
    let run = dlvp(&["spec", "validate", spec.to_str().unwrap()]);
    assert_refused(&run, &spec, problem, &dir.path().join("out"));
    // The same spec handed to export stops it before anything is written.
    let out = dir.path().join("out");
    let run = dlvp(&[
        "export",
        "--weights",
        golden_weights().to_str().unwrap(),
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out.join("model.onnx").to_str().unwrap(),
    ]);
    assert_refused(&run, &spec, problem, &out);
}

#[test]
fn a_folder_given_as_a_spec_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("specs.yaml");
    std::fs::create_dir(&folder).unwrap();
    let run = dlvp(&["spec", "validate", folder.to_str().unwrap()]);
    assert_refused(&run, &folder, "cannot read spec", &dir.path().join("out"));
}

// ---------------------------------------------------------------- checkpoints

/// A checkpoint: the tiny spec's tensors (edited), serialised by the `safetensors` crate.
fn ckpt_bytes(edit: impl FnOnce(&mut std::collections::BTreeMap<String, Tensor>)) -> Vec<u8> {
    let spec = tiny_spec();
    let mut tensors = tensors_for(&spec);
    edit(&mut tensors);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    write(&path, &tensors, Some(dlvp_metadata(&spec)));
    std::fs::read(path).unwrap()
}

fn raw_ckpt(header: &str, data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    write_raw(&path, header, data);
    std::fs::read(path).unwrap()
}

/// One case per error class of the checkpoint reader and checker (length prefix, header size,
/// header JSON, data layout, dtype, the manifest check, unused tensors at export): the exhaustive
/// tables are the exporter's (`exporter/tests/weights.rs`). Each goes through `weights check`
/// and `export`, which must stop before writing anything.
#[rstest]
#[case::empty(Vec::new(), "fewer than the 8-byte header length")]
#[case::text(b"this is not a checkpoint at all".to_vec(), "not a safetensors file")]
#[case::header_not_json(raw_ckpt("{not json", &[]), "header is not valid JSON")]
#[case::offsets_past_end(
    raw_ckpt(r#"{"a":{"dtype":"F32","shape":[16],"data_offsets":[0,64]}}"#, &[0; 16]),
    "ends at byte 64 of a 16-byte data section"
)]
#[case::unsupported_dtype(
    ckpt_bytes(|t| { let v = t.get_mut("visual.proj").unwrap(); v.dtype = safetensors::Dtype::I32; }),
    "has dtype I32; only F32, F16 and BF16 are supported"
)]
#[case::missing_tensor(ckpt_bytes(|t| { t.remove("visual.proj"); }), "tensor `visual.proj` is missing")]
#[case::extra_tensor(
    ckpt_bytes(|t| { t.insert("visual.transformer.resblocks.4.ln_1.weight".into(), Tensor::seeded(&[64], 1)); }),
    "the graph does not use: visual.transformer.resblocks.4.ln_1.weight"
)]
fn a_bad_checkpoint_is_refused_by_name(#[case] bytes: Vec<u8>, #[case] problem: &str) {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("from other team.safetensors");
    std::fs::write(&ckpt, bytes).unwrap();
    let out = dir.path().join("out");
    let run = dlvp(&[
        "export",
        "--weights",
        ckpt.to_str().unwrap(),
        "--out",
        out.join("model.onnx").to_str().unwrap(),
    ]);
    assert_refused(&run, &ckpt, problem, &out);
}

#[test]
fn a_folder_given_as_a_checkpoint_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("weights.safetensors");
    std::fs::create_dir(&folder).unwrap();
    let out = dir.path().join("out");
    let run = dlvp(&[
        "export",
        "--weights",
        folder.to_str().unwrap(),
        "--out",
        out.join("m.onnx").to_str().unwrap(),
    ]);
    assert_refused(&run, &folder, "cannot read checkpoint", &out);
}

// ---------------------------------------------------------------- models

fn edited(edit: impl FnOnce(&mut pb::ModelProto)) -> Vec<u8> {
    onnx_edit::edited(tiny_model(), edit)
}

#[rstest]
#[case::text(b"not a model".to_vec(), "not an ONNX model")]
#[case::empty(Vec::new(), "not a dlvp graph")]
#[case::truncated(half(std::fs::read(tiny_model()).unwrap()), "not an ONNX model")]
#[case::no_metadata(edited(|m| m.metadata_props.clear()), "not a dlvp graph: no dlvp.format metadata")]
#[case::wrong_input_size(
    edited(|m| { input_dims(m)[2].value = dim(64); }),
    "input `image` has shape [B, 3, 64, 56], but the spec in its metadata (image_size 56) needs [B, 3, 56, 56]"
)]
#[case::wrong_input_rank(
    edited(|m| { input_dims(m).pop(); }),
    "input `image` has shape [B, 3, 56]"
)]
#[case::unknown_precision(
    edited(|m| m.metadata_props.push(pb::StringStringEntryProto { key: "dlvp.precision".into(), value: "int4".into() })),
    "metadata dlvp.precision is \"int4\"; expected \"fp32\" or \"fp16\""
)]
#[case::renamed_input(
    edited(|m| { m.graph.as_mut().unwrap().input[0].name = "pixels".into(); }),
    "the graph's input is `pixels`, but its metadata says `image`"
)]
fn a_bad_model_is_refused_by_name(#[case] bytes: Vec<u8>, #[case] problem: &str) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("line model.onnx");
    std::fs::write(&model, bytes).unwrap();
    let image = repo().join("fixtures/samples/fabric_hole.png");
    let out = dir.path().join("out");
    assert_refused(&detect(&image, &model, &out, &[]), &model, problem, &out);
    for backend in backends() {
        assert_refused(
            &dlvp(&[
                "bench",
                "--model",
                model.to_str().unwrap(),
                "--backend",
                backend,
                "--iters",
                "1",
                "--warmup",
                "0",
            ]),
            &model,
            problem,
            &out,
        );
    }
}

/// tract, and OpenVINO where its library is found: the backends that load a model from bytes the
/// runtime has checked (ONNX Runtime gets self-contained files by path, after the same checks).
fn backends() -> Vec<&'static str> {
    let mut all = vec!["tract"];
    if dlvp_test_support::gate::openvino().is_some() {
        all.push("openvino");
    }
    all
}

/// The tiny model exported with `--external-data` into `dir/models/`: (model, data file).
fn external_model(dir: &Path) -> (PathBuf, PathBuf) {
    let model = dir.join("models/m.onnx");
    let run = dlvp(&[
        "export",
        "--weights",
        golden_weights().to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
        "--external-data",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    (model.clone(), dir.join("models/m.onnx.data"))
}

/// Rewrites the first external initializer's `key` entry of the model at `path`.
fn set_external(path: &Path, key: &str, value: &str) {
    let mut model = pb::ModelProto::decode(&std::fs::read(path).unwrap()[..]).unwrap();
    let tensor = model
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| !t.external_data.is_empty())
        .unwrap();
    match tensor.external_data.iter_mut().find(|e| e.key == key) {
        Some(entry) => entry.value = value.into(),
        None => tensor.external_data.push(pb::StringStringEntryProto {
            key: key.into(),
            value: value.into(),
        }),
    }
    std::fs::write(path, model.encode_to_vec()).unwrap();
}

#[test]
fn a_model_with_external_data_runs_like_the_single_file_one() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = external_model(dir.path());
    let image = repo().join("fixtures/samples/fabric_hole.png");
    let score = |model: &Path, backend: &str| {
        let run = dlvp(&[
            "detect",
            image.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--backend",
            backend,
            "--json",
        ]);
        assert!(run.status.success(), "{backend}: {}", stderr(&run));
        let line: serde_json::Value = serde_json::from_str(stdout(&run).trim()).unwrap();
        line["score"].as_f64().unwrap()
    };
    let single = score(tiny_model(), "tract");
    assert_eq!(score(&model, "tract"), single);
    for backend in backends() {
        let external = score(&model, backend);
        assert!(
            (external - single).abs() <= 1e-4,
            "{backend}: {external} vs {single}"
        );
    }
}

#[rstest]
#[case::parent_folder(
    "location",
    "../secrets.data",
    "is not a plain path inside the model's folder"
)]
#[case::absolute_path(
    "location",
    "/etc/passwd",
    "is not a plain path inside the model's folder"
)]
#[case::missing_file("location", "elsewhere.data", "No such file")]
#[case::past_the_end("offset", "99999999", "are past its end")]
#[case::wrong_length("length", "12", "12 bytes, but shape")]
#[case::not_a_number("offset", "-4", "not a byte count")]
fn bad_external_data_is_refused_naming_the_initializer(
    #[case] key: &str,
    #[case] value: &str,
    #[case] problem: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = external_model(dir.path());
    std::fs::write(dir.path().join("secrets.data"), vec![0u8; 1 << 20]).unwrap();
    set_external(&model, key, value);
    let image = repo().join("fixtures/samples/fabric_hole.png");
    let out = dir.path().join("out");
    let run = detect(&image, &model, &out, &[]);
    assert_refused(&run, &model, problem, &out);
    assert!(stderr(&run).contains("initializer `"), "{}", stderr(&run));
}

#[test]
fn external_data_behind_a_symlink_out_of_the_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = external_model(dir.path());
    let outside = dir.path().join("outside.data");
    std::fs::rename(&data, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &data).unwrap();
    let image = repo().join("fixtures/samples/fabric_hole.png");
    let out = dir.path().join("out");
    let run = detect(&image, &model, &out, &[]);
    assert_refused(&run, &model, "leads out of the model's folder", &out);
}

#[test]
fn a_model_over_the_size_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = repo().join("fixtures/samples/fabric_hole.png");
    let out = dir.path().join("out");
    // The single-file model (1.4 MB) against a 1 MiB limit: refused from its size alone.
    let run = detect(&image, tiny_model(), &out, &["--max-model-mib", "1"]);
    assert_refused(&run, tiny_model(), "over the limit of 1048576 bytes", &out);
    assert!(
        stderr(&run).contains("MiB) (--max-model-mib)"),
        "{}",
        stderr(&run)
    );
    // Split into a 0.1 MB model and 1.3 MB of data, the two are counted together.
    let (model, _) = external_model(dir.path());
    let run = detect(&image, &model, &out, &["--max-model-mib", "1"]);
    assert_refused(&run, &model, "the model with its external data is", &out);
}

// ---------------------------------------------------------------- stored thresholds

/// The tiny graph with the five `dlvp.threshold.*` keys `dlvp threshold` writes, set to `keys`
/// (later entries win): a calibrated graph without running a calibration.
fn with_thresholds(keys: &[(&str, &str)]) -> Vec<u8> {
    edited(|m| {
        for &(key, value) in keys {
            match m.metadata_props.iter_mut().find(|p| p.key == key) {
                Some(entry) => entry.value = value.into(),
                None => m.metadata_props.push(pb::StringStringEntryProto {
                    key: key.into(),
                    value: value.into(),
                }),
            }
        }
    })
}

/// Valid stored thresholds, each at an edge of what decides: image 0, pixel just below 1, a
/// false-alarm rate of 0.5, one calibration image.
const EDGE_THRESHOLDS: [(&str, &str); 5] = [
    ("dlvp.threshold.image", "0"),
    ("dlvp.threshold.pixel", "0.99999994"),
    ("dlvp.threshold.false_alarm", "0.5"),
    ("dlvp.threshold.images", "1"),
    ("dlvp.threshold.tiling", "none"),
];

/// A graph whose stored thresholds could not decide — NaN or ≥ 1 would pass every part, < 0
/// would make every part NG, and a false-alarm rate or image count out of range is no
/// calibration — is refused when it loads, naming the key (the C++ detector refuses the same
/// graphs with the same words: tests/cpp_example.rs). Runs without ONNX Runtime or the C++ build.
#[rstest]
#[case::image_nan(
    "dlvp.threshold.image",
    "nan",
    "metadata dlvp.threshold.image is not a number"
)]
#[case::image_infinite(
    "dlvp.threshold.image",
    "inf",
    "metadata dlvp.threshold.image is not a number"
)]
#[case::image_above_one(
    "dlvp.threshold.image",
    "1.5",
    "metadata dlvp.threshold.image: 1.5 would pass every part: scores and map values lie in [0, 1], so a threshold must be at least 0 and below 1"
)]
#[case::image_one(
    "dlvp.threshold.image",
    "1",
    "metadata dlvp.threshold.image: 1 would pass every part"
)]
#[case::image_negative(
    "dlvp.threshold.image",
    "-0.5",
    "metadata dlvp.threshold.image: -0.5 would make every part NG: scores and map values lie in [0, 1], so a threshold must be at least 0 and below 1"
)]
#[case::pixel_nan(
    "dlvp.threshold.pixel",
    "nan",
    "metadata dlvp.threshold.pixel is not a number"
)]
#[case::pixel_above_one(
    "dlvp.threshold.pixel",
    "2",
    "metadata dlvp.threshold.pixel: 2 would pass every part"
)]
#[case::false_alarm_zero(
    "dlvp.threshold.false_alarm",
    "0",
    "metadata dlvp.threshold.false_alarm is 0; expected a rate between 0 and 1 (exclusive)"
)]
#[case::false_alarm_one(
    "dlvp.threshold.false_alarm",
    "1",
    "metadata dlvp.threshold.false_alarm is 1; expected a rate between 0 and 1 (exclusive)"
)]
#[case::no_images(
    "dlvp.threshold.images",
    "0",
    "metadata dlvp.threshold.images is 0; expected a whole number of images, at least 1"
)]
#[case::half_an_image(
    "dlvp.threshold.images",
    "2.5",
    "metadata dlvp.threshold.images is 2.5; expected a whole number of images, at least 1"
)]
#[case::tiling_nan_scale(
    "dlvp.threshold.tiling",
    "scale NaN, overlap 0.25",
    "metadata dlvp.threshold.tiling is \"scale NaN, overlap 0.25\"; expected \"none\" or \"scale S, overlap F\""
)]
fn stored_thresholds_that_cannot_decide_are_refused_by_name(
    #[case] key: &str,
    #[case] value: &str,
    #[case] problem: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("line model.onnx");
    let mut keys = EDGE_THRESHOLDS.to_vec();
    keys.push((key, value));
    std::fs::write(&model, with_thresholds(&keys)).unwrap();
    let image = repo().join("fixtures/samples/fabric_hole.png");
    let out = dir.path().join("out");
    assert_refused(&detect(&image, &model, &out, &[]), &model, problem, &out);
}

/// The control for the refusals above: thresholds at the edges of [0, 1) load and decide (every
/// real score is above 0, so image threshold 0 makes the part NG).
#[test]
fn stored_thresholds_at_the_edges_of_the_range_decide() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("line model.onnx");
    std::fs::write(&model, with_thresholds(&EDGE_THRESHOLDS)).unwrap();
    let image = repo().join("fixtures/samples/fabric_hole.png");
    let run = detect(&image, &model, &dir.path().join("out"), &["--json"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let line: serde_json::Value = serde_json::from_str(stdout(&run).trim()).unwrap();
    assert_eq!(line["decision"], "NG", "{line}");
    assert_eq!(line["threshold"], 0.0, "{line}");
}

/// A checkpoint handed over where a graph belongs (`--model W.safetensors`, `inspect
/// W.safetensors`) is named as a checkpoint with the command that compiles it, by every command
/// that opens a graph — the protobuf decoder alone said `invalid tag value: 0`.
#[rstest]
#[case::detect("detect")]
#[case::eval("eval")]
#[case::bench("bench")]
#[case::inspect("inspect")]
fn a_checkpoint_given_as_the_graph_says_to_export_it(#[case] command: &str) {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("line3 weights.safetensors");
    std::fs::copy(golden_weights(), &ckpt).unwrap();
    let data = dir.path().join("data");
    let good = data.join("wood/test/good");
    std::fs::create_dir_all(&good).unwrap();
    let image = repo().join("fixtures/samples/wood_good.png");
    std::fs::copy(&image, good.join("000.png")).unwrap();
    let out = dir.path().join("out");
    let (ckpt_s, out_s) = (ckpt.to_str().unwrap(), out.to_str().unwrap());
    let run = match command {
        "detect" => detect(&image, &ckpt, &out, &[]),
        "eval" => dlvp(&[
            "eval",
            "--data",
            data.to_str().unwrap(),
            "--model",
            ckpt_s,
            "--backend",
            "tract",
            "--out",
            out_s,
        ]),
        "bench" => dlvp(&[
            "bench",
            "--model",
            ckpt_s,
            "--backend",
            "tract",
            "--iters",
            "1",
        ]),
        _ => dlvp(&["inspect", ckpt_s]),
    };
    let expected = format!(
        "a checkpoint (safetensors), not an ONNX graph: run `dlvp export --weights {ckpt_s} --out model.onnx`"
    );
    assert_refused(&run, &ckpt, &expected, &out);
}
