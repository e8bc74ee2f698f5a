//! The staged pipeline gives what a loop over `detect_batch` gives — the same batches, the same
//! numbers bit for bit, every file delivered once in file order, undecodable files reported at
//! their place — whatever the thread counts and window.

use std::path::PathBuf;
use std::sync::Mutex;

use dlvp_runtime::pipeline::{run, PipelineOptions};
use dlvp_runtime::preprocess::{load_rgb8, DEFAULT_MAX_PIXELS};
use dlvp_runtime::{BackendChoice, Detection, Detector};
use rstest::rstest;

const MODEL: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/demo/dlvp-clip-demo.onnx"
));

/// The demo model on tract; `None` in a build without tract.
fn tract_detector() -> Option<Detector> {
    BackendChoice::Tract.is_built().then(|| {
        Detector::builder()
            .backend(BackendChoice::Tract)
            .build_from_bytes(MODEL.to_vec())
            .unwrap()
    })
}

/// The sample images with an undecodable file in the middle, and the folder that holds it.
fn files() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/samples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.insert(4, broken);
    (dir, files)
}

/// What the serial path gives: the files `batch` at a time, the undecodable ones left out.
fn serial(detector: &Detector, files: &[PathBuf], batch: usize) -> Vec<Option<Detection>> {
    let mut out = Vec::new();
    for chunk in files.chunks(batch) {
        let images: Vec<Option<image::RgbImage>> =
            chunk.iter().map(|p| load_rgb8(p).ok()).collect();
        let ok: Vec<&image::RgbImage> = images.iter().flatten().collect();
        let mut found = detector.detect_batch(&ok).unwrap().into_iter();
        out.extend(
            images
                .iter()
                .map(|i| i.as_ref().map(|_| found.next().unwrap())),
        );
    }
    out
}

#[rstest]
#[case::one_thread_each(3, 1, 1, 1, false)]
#[case::more_threads_than_batches(3, 3, 2, 2, true)]
#[case::batch_of_one(1, 2, 2, 4, false)]
fn the_pipeline_gives_the_serial_numbers_in_file_order(
    #[case] batch: usize,
    #[case] decoders: usize,
    #[case] finishers: usize,
    #[case] window: usize,
    #[case] keep_images: bool,
) {
    let Some(detector) = tract_detector() else {
        return;
    };
    let (_dir, files) = files();
    let expected = serial(&detector, &files, batch);
    let options = PipelineOptions {
        batch,
        max_pixels: DEFAULT_MAX_PIXELS,
        decoders,
        finishers,
        window,
        keep_images,
        jpeg_draft: false,
        tiling: None,
    };
    let finished_on = Mutex::new(std::collections::HashSet::new());
    let mut labelled = Vec::new();
    let mut delivered = Vec::new();
    let times = run(
        &detector,
        &files,
        &options,
        |index, _| {
            labelled.push(index);
            index * 10
        },
        |scored| {
            finished_on
                .lock()
                .unwrap()
                .insert(std::thread::current().id());
            assert_eq!(scored.path, files[scored.index]);
            assert_eq!(scored.label, scored.index * 10);
            assert_eq!(scored.image.is_some(), keep_images);
            scored.detection
        },
        |index, path, result| {
            assert_eq!(path, files[index]);
            delivered.push((index, result));
            true
        },
    )
    .unwrap();
    assert_eq!(
        delivered.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (0..files.len()).collect::<Vec<_>>(),
        "every file once, in file order"
    );
    for ((index, got), want) in delivered.iter().zip(&expected) {
        match (got, want) {
            (Ok(got), Some(want)) => {
                assert_eq!(got.score.to_bits(), want.score.to_bits(), "{index}");
                assert_eq!(got.map, want.map, "{index}");
                assert_eq!(got.topk, want.topk, "{index}");
            }
            (Err(e), None) => assert!(e.to_string().contains("broken.png"), "{e}"),
            _ => panic!("file {index}: decoded in one path and not the other"),
        }
    }
    assert_eq!((times.images, times.failed), (files.len() - 1, 1));
    let decodable: Vec<usize> = (0..files.len())
        .filter(|&i| expected[i].is_some())
        .collect();
    assert_eq!(
        labelled, decodable,
        "labels in file order, for decoded files only"
    );
    let runs = expected
        .chunks(batch)
        .filter(|c| c.iter().any(Option::is_some))
        .count();
    assert_eq!(
        times.batches, runs,
        "one graph run per batch with a decodable image"
    );
    assert!(times.wall >= times.deliver && times.infer > std::time::Duration::ZERO);
    assert!(finished_on.lock().unwrap().len() <= finishers);
}

#[test]
fn files_refused_by_the_pixel_limit_are_delivered_and_no_graph_runs() {
    let Some(detector) = tract_detector() else {
        return;
    };
    let (_dir, files) = files();
    let options = PipelineOptions {
        batch: 2,
        ..PipelineOptions::new(2, 16)
    };
    // 16 pixels at most: every file is refused, so no graph runs and nothing fails but files.
    let mut errors = 0;
    let times = run(
        &detector,
        &files,
        &options,
        |_, _| (),
        |s| s.index,
        |_, _, r| {
            errors += r.is_err() as usize;
            true
        },
    )
    .unwrap();
    assert_eq!((errors, times.images, times.batches), (files.len(), 0, 0));
}

#[test]
fn deliver_can_stop_the_run() {
    let Some(detector) = tract_detector() else {
        return;
    };
    let (_dir, files) = files();
    let options = PipelineOptions {
        window: 1,
        ..PipelineOptions::new(2, DEFAULT_MAX_PIXELS)
    };
    let mut seen = Vec::new();
    run(
        &detector,
        &files,
        &options,
        |_, _| (),
        |s| s.index,
        |index, _, _| {
            seen.push(index);
            index < 2
        },
    )
    .unwrap();
    assert_eq!(
        seen,
        [0, 1, 2],
        "nothing is delivered after the file that stopped it"
    );
}
