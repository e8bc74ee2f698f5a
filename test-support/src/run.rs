//! Running the `dlvp` binary from the root package's tests, and the checks every failure must
//! pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The `dlvp` binary beside the running test (`target/<profile>/deps/TEST` →
/// `target/<profile>/dlvp`): cargo builds it before the root package's integration tests, the
/// only ones that run it.
pub fn dlvp_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test binary lives in target/<profile>/deps")
        .join(format!("dlvp{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{}: no dlvp binary (it is built for the root package's tests: cargo test --workspace)",
        bin.display()
    );
    bin
}

pub fn dlvp(args: &[&str]) -> Output {
    Command::new(dlvp_bin())
        .args(args)
        .output()
        .expect("run dlvp")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failure: the given exit code, one `error:` line on stderr, and no panic anywhere.
pub fn assert_fails(out: &Output, code: i32, expected: &str) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {err}",
        stdout(out)
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(expected), "expected {expected:?} in {err:?}");
}

pub fn golden_weights() -> PathBuf {
    repo().join("fixtures/tiny/weights.safetensors")
}

/// `dlvp export --weights WEIGHTS --out OUT`, which must succeed.
pub fn export(weights: &Path, out: &Path) {
    export_with(weights, out, &[]);
}

/// `dlvp export --weights WEIGHTS --out OUT EXTRA...`, which must succeed.
pub fn export_with(weights: &Path, out: &Path, extra: &[&str]) {
    let run = export_run(weights, out, extra);
    assert!(run.status.success(), "{}", stderr(&run));
}

/// `dlvp export --weights WEIGHTS --out OUT EXTRA...`, whatever it does (for tests of failures).
pub fn export_run(weights: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "export",
        "--weights",
        weights.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    dlvp(&args)
}

/// `dlvp detect PATH --model MODEL --backend BACKEND --json`, which must succeed: one JSON object
/// per image.
pub fn detect_json(path: &Path, model: &Path, backend: &str) -> Vec<serde_json::Value> {
    let run = dlvp(&[
        "detect",
        path.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--backend",
        backend,
        "--json",
    ]);
    assert!(run.status.success(), "{backend}: {}", stderr(&run));
    stdout(&run)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `dlvp bench --model MODEL --backend BACKEND --iters 1 --warmup 0 --json EXTRA...`, whatever it
/// does; [`json_report`] reads a successful one.
pub fn bench_once(model: &Path, backend: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--backend",
        backend,
        "--iters",
        "1",
        "--warmup",
        "0",
        "--json",
    ];
    args.extend_from_slice(extra);
    dlvp(&args)
}

/// The one JSON object a successful `--json` run printed.
pub fn json_report(run: &Output) -> serde_json::Value {
    assert!(run.status.success(), "{}", stderr(run));
    serde_json::from_str(stdout(run).trim()).unwrap()
}

/// The golden tiny checkpoint exported into `dir`.
pub fn exported_golden(dir: &Path) -> PathBuf {
    let model = dir.join("tiny.onnx");
    export(&golden_weights(), &model);
    model
}

/// `dlvp demo-data` into `dir/name`: `per_category` defect-free training images of each demo
/// category at `size` px and no test images, which must succeed; returns the folder.
pub fn good_images(dir: &Path, name: &str, per_category: usize, size: usize, seed: u64) -> PathBuf {
    let out = dir.join(name);
    let (per, size, seed) = (per_category.to_string(), size.to_string(), seed.to_string());
    let run = dlvp(&[
        "demo-data",
        "--out",
        out.to_str().unwrap(),
        "--count",
        "0",
        "--train-count",
        &per,
        "--size",
        &size,
        "--seed",
        &seed,
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    out
}

/// `dlvp threshold --model MODEL --good GOOD --false-alarm ALPHA --out OUT --backend BACKEND
/// EXTRA...`, whatever it does.
pub fn threshold(
    model: &Path,
    good: &Path,
    alpha: &str,
    out: &Path,
    backend: &str,
    extra: &[&str],
) -> Output {
    let mut args = vec![
        "threshold",
        "--model",
        model.to_str().unwrap(),
        "--good",
        good.to_str().unwrap(),
        "--false-alarm",
        alpha,
        "--out",
        out.to_str().unwrap(),
        "--backend",
        backend,
    ];
    args.extend_from_slice(extra);
    dlvp(&args)
}

/// Every file below `root` as (path relative to it, bytes), in sorted order: two runs that
/// should be byte-identical compare equal.
pub fn files_under(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}
