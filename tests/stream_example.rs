//! The GStreamer example (examples/cpp, `dlvp_stream`) on `videotestsrc`: every frame of the
//! stream is scored once, in order, with its timestamp, the partial batch at end of stream
//! included; the pixels it scored (dumped with `--dump`) score the same under
//! `dlvp detect --backend ort-cpu` (≤ 1e-5, Top-K equal), and so do the frames as the appsink
//! delivered them — which checks the stride handling and the Pillow-exact resize end to end, for
//! RGB, BGRx and GRAY8 appsink formats. Pipeline and model failures exit 1 with a clear message.
//!
//! Needs the built example: `DLVP_STREAM_EXAMPLE=path/to/dlvp_stream` (scripts/test builds it
//! with examples/cpp/build.sh where Debian's GStreamer packages are installed and sets this;
//! without it these tests skip and say so, unless `DLVP_REQUIRE_STREAM_EXAMPLE=1`, which
//! scripts/test sets wherever it can install them, and always in CI: then they fail).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dlvp_test_support::run::{assert_fails, dlvp, export_with, golden_weights, stderr, stdout};

fn example() -> Option<PathBuf> {
    dlvp_test_support::gate::stream_example()
}

fn stream(bin: &Path, model: &Path, source: &str, extra: &[&str]) -> Output {
    Command::new(bin)
        .arg(model)
        .args(["--source", source])
        .args(extra)
        .output()
        .unwrap()
}

/// The model's K, from the `MODEL.onnx.json` that `dlvp export` writes beside it.
fn top_k(model: &Path) -> usize {
    let sidecar = PathBuf::from(format!("{}.json", model.display()));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sidecar).unwrap()).unwrap();
    let topk = json["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "topk_indices")
        .expect("a topk_indices output");
    topk["shape"][1].as_u64().unwrap() as usize
}

/// `dlvp detect --backend ort-cpu --json` on these files: (score, Top-K) per file, in order.
fn detect(model: &Path, files: &[PathBuf]) -> Vec<(f64, Vec<i64>)> {
    let mut args = vec!["detect"];
    args.extend(files.iter().map(|p| p.to_str().unwrap()));
    args.extend([
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "ort-cpu",
        "--json",
    ]);
    let run = dlvp(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    let lines: Vec<serde_json::Value> = stdout(&run)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), files.len());
    lines
        .iter()
        .zip(files)
        .map(|(json, file)| {
            assert_eq!(json["image"], file.to_str().unwrap());
            (json["score"].as_f64().unwrap(), topk_of(json))
        })
        .collect()
}

fn topk_of(json: &serde_json::Value) -> Vec<i64> {
    json["topk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

#[test]
fn every_frame_of_a_test_stream_scores_as_dlvp_detect_scores_it() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.onnx");
    export_with(&golden_weights(), &model, &[]);
    let k = top_k(&model);
    // (pattern, appsink format, frame size): RGB rows of 70 pixels are padded to 212 bytes and
    // GRAY8 rows of 57 to 60; 56×56 is the tiny model's size (no resize); the others are resized.
    for (pattern, format, (w, h)) in [
        ("smpte", "RGB", (70, 50)),
        ("ball", "BGRx", (80, 64)),
        ("pinwheel", "GRAY8", (57, 41)),
        ("gradient", "RGB", (56, 56)),
    ] {
        let label = format!("{pattern} {format} {w}x{h}");
        let dump = dir.path().join(format!("dump-{pattern}"));
        let source = format!(
            "videotestsrc num-buffers=6 pattern={pattern} ! video/x-raw,width={w},height={h}"
        );
        // Batches of 4: the stream's sixth frame ends it with a partial batch of 2.
        let run = stream(
            &bin,
            &model,
            &source,
            &[
                "--format",
                format,
                "--batch",
                "4",
                "--json",
                "--dump",
                dump.to_str().unwrap(),
            ],
        );
        assert!(run.status.success(), "{label}: {}", stderr(&run));
        let lines: Vec<serde_json::Value> = stdout(&run)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 6, "{label}: {}", stdout(&run));
        let mut last_pts = None;
        for (n, line) in lines.iter().enumerate() {
            assert_eq!(line["frame"], n as u64, "{label}");
            let pts = line["pts_ns"].as_u64().expect("a timestamp");
            assert!(
                last_pts.is_none_or(|p| pts > p),
                "{label}: pts {pts} after {last_pts:?}"
            );
            last_pts = Some(pts);
            let score = line["score"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&score), "{label}: score {score}");
            assert_eq!(topk_of(line).len(), k, "{label}");
        }

        let seen: Vec<PathBuf> = (0..6)
            .map(|n| dump.join(format!("frame-{n:06}.ppm")))
            .collect();
        let delivered: Vec<PathBuf> = (0..6)
            .map(|n| dump.join(format!("frame-{n:06}-source.ppm")))
            .collect();
        for (file, size) in seen
            .iter()
            .map(|f| (f, (56, 56)))
            .chain(delivered.iter().map(|f| (f, (w, h))))
        {
            assert_eq!(
                image::image_dimensions(file).unwrap(),
                size,
                "{}",
                file.display()
            );
        }
        let mut files = seen.clone();
        files.extend(delivered.iter().cloned());
        let reference = detect(&model, &files);
        for (n, line) in lines.iter().enumerate() {
            let score = line["score"].as_f64().unwrap();
            // The detector's own pixels, and the delivered frame resized by `dlvp detect` (Pillow's
            // algorithm in Rust) instead of dlvp/resize.hpp.
            for (what, (want, want_topk)) in
                [("seen", &reference[n]), ("delivered", &reference[6 + n])]
            {
                assert!(
                    (score - want).abs() <= 1e-5,
                    "{label} frame {n} ({what}): {score} vs dlvp detect's {want}"
                );
                assert_eq!(&topk_of(line), want_topk, "{label} frame {n} ({what})");
            }
        }
    }
}

/// Frames of known pixels, written in GStreamer's own raw layout (rows padded to 4 bytes, the
/// padding filled with 0xAB) and streamed by `filesrc`: the scores equal `dlvp detect` on the same
/// pictures saved as PNG. Unlike the dumps above (written by the program itself), this catches a
/// wrong stride, channel order or padding byte independently of the program.
#[test]
fn frames_of_known_pixels_score_as_the_same_pictures_in_png() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.onnx");
    export_with(&golden_weights(), &model, &[]);
    let value = |f: u32, x: u32, y: u32, c: u32| {
        ((x * (3 + c) + y * (5 + 2 * c) + f * 40 + x * y * c) % 256) as u8
    };
    // (format, bytes per pixel, where R, G, B sit, width, height)
    for (format, n, rgb_at, (w, h)) in [
        ("RGB", 3, [0, 1, 2], (70u32, 50u32)),
        ("BGRx", 4, [2, 1, 0], (45, 30)),
        ("GRAY8", 1, [0, 0, 0], (57, 41)),
        ("RGB", 3, [0, 1, 2], (56, 56)),
    ] {
        let label = format!("{format} {w}x{h}");
        let stride = (w * n).div_ceil(4) * 4;
        let (mut raw, mut pngs) = (Vec::new(), Vec::new());
        for f in 0..3 {
            let picture = image::RgbImage::from_fn(w, h, |x, y| {
                let gray = value(f, x, y, 0);
                image::Rgb(if n == 1 {
                    [gray; 3]
                } else {
                    [value(f, x, y, 0), value(f, x, y, 1), value(f, x, y, 2)]
                })
            });
            for y in 0..h {
                let start = raw.len();
                raw.resize(start + stride as usize, 0xAB);
                for x in 0..w {
                    let px = picture.get_pixel(x, y).0;
                    for (value, at) in px.iter().zip(rgb_at) {
                        raw[start + (x * n) as usize + at] = *value;
                    }
                }
            }
            let png = dir.path().join(format!("{format}-{w}x{h}-{f}.png"));
            if n == 1 {
                image::GrayImage::from_fn(w, h, |x, y| image::Luma([value(f, x, y, 0)]))
                    .save(&png)
                    .unwrap();
            } else {
                picture.save(&png).unwrap();
            }
            pngs.push(png);
        }
        let file = dir.path().join(format!("{format}-{w}x{h}.raw"));
        std::fs::write(&file, &raw).unwrap();
        let source = format!(
            "filesrc location=\"{}\" blocksize={} ! video/x-raw,format={format},width={w},height={h},framerate=30/1",
            file.display(),
            stride * h
        );
        let run = stream(
            &bin,
            &model,
            &source,
            &["--format", format, "--batch", "2", "--json"],
        );
        assert!(run.status.success(), "{label}: {}", stderr(&run));
        let lines: Vec<serde_json::Value> = stdout(&run)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{label}: {}", stdout(&run));
        for ((n, line), (want, want_topk)) in lines.iter().enumerate().zip(detect(&model, &pngs)) {
            let score = line["score"].as_f64().unwrap();
            assert!(
                (score - want).abs() <= 1e-5,
                "{label} frame {n}: {score} vs dlvp detect's {want}"
            );
            assert_eq!(topk_of(line), want_topk, "{label} frame {n}");
        }
    }
}

/// `--frames N` stops an endless live source after N frames, partial batch scored; `--threshold`
/// decides every frame.
#[test]
fn frames_stops_a_live_source() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.onnx");
    export_with(&golden_weights(), &model, &[]);
    let run = stream(
        &bin,
        &model,
        "videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=30/1",
        &["--frames", "3", "--batch", "2", "--json"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let frames: Vec<u64> = stdout(&run)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["frame"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(frames, [0, 1, 2]);
    assert!(
        !stdout(&run).contains("decision"),
        "no threshold, no decision"
    );

    // With a threshold every frame is decided, as `dlvp detect` decides: here all NG (every
    // real score is above 0, the lowest threshold that can decide).
    let decided = stream(
        &bin,
        &model,
        "videotestsrc num-buffers=3 ! video/x-raw,width=64,height=48",
        &["--batch", "2", "--threshold", "0"],
    );
    assert!(decided.status.success(), "{}", stderr(&decided));
    let text = stdout(&decided);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.iter().all(|l| l.ends_with("  NG")), "{lines:?}");
}

#[test]
fn pipeline_and_model_failures_exit_1_by_name() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.onnx");
    export_with(&golden_weights(), &model, &[]);

    // An element GStreamer does not know: the pipeline description is refused.
    let run = stream(&bin, &model, "nosuchelement", &[]);
    assert_fails(
        &run,
        1,
        "error: --source \"nosuchelement\": no element \"nosuchelement\"",
    );
    // An ERROR message on the bus as the pipeline starts, and one mid-stream after frames flowed.
    let missing_file = dir.path().join("no such file.mp4");
    let run = stream(
        &bin,
        &model,
        &format!(
            "filesrc location=\"{}\" ! decodebin",
            missing_file.display()
        ),
        &[],
    );
    assert_fails(&run, 1, "error: pipeline: filesrc0: ");
    let run = stream(
        &bin,
        &model,
        "videotestsrc num-buffers=20 ! video/x-raw,width=16,height=16 ! identity error-after=3",
        &["--batch", "1"],
    );
    assert_fails(&run, 1, "error: pipeline: identity0: ");

    let missing = dir.path().join("missing.onnx");
    let run = stream(&bin, &missing, "videotestsrc num-buffers=1", &[]);
    assert_fails(
        &run,
        1,
        &format!(
            "error: {}: cannot load the model: cannot open the model file",
            missing.display()
        ),
    );

    // Bad usage: exit 2 with the usage line.
    for args in [
        &["--batch", "0"][..],
        &["--format", "I420"],
        &["--frames", "x"],
        &["--nope"],
    ] {
        let run = Command::new(&bin).arg(&model).args(args).output().unwrap();
        assert_fails(&run, 2, "usage: dlvp_stream MODEL.onnx");
    }
    let run = Command::new(&bin).output().unwrap();
    assert_fails(&run, 2, "usage: dlvp_stream MODEL.onnx");
}

/// `--threshold T` with a T that cannot decide (not a number, NaN, infinite, at or above 1, below
/// 0: it would pass every frame or fail every frame) is bad usage: exit 2 with the reason, before
/// the model loads or the pipeline starts, and no frame is scored.
#[test]
fn a_threshold_that_cannot_decide_is_refused() {
    let Some(bin) = example() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.onnx");
    export_with(&golden_weights(), &model, &[]);
    let range =
        "scores and map values lie in [0, 1], so a threshold must be at least 0 and below 1";
    for (value, why) in [
        (
            "abc",
            "\"abc\" is not a number; expected one in [0, 1)".to_string(),
        ),
        (
            "nan",
            "NaN is not a number: a NaN threshold would pass every part".to_string(),
        ),
        ("inf", format!("inf would pass every part: {range}")),
        ("1.5", format!("1.5 would pass every part: {range}")),
        ("-1", format!("-1 would make every part NG: {range}")),
    ] {
        let run = stream(
            &bin,
            &model,
            "videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48",
            &["--threshold", value],
        );
        assert_fails(&run, 2, &format!("error: --threshold: {why}"));
        assert!(
            stdout(&run).is_empty(),
            "--threshold {value}: {}",
            stdout(&run)
        );
    }
}
