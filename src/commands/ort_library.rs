//! Where the `dlvp` binary looks for ONNX Runtime's library: `--ort-lib`, then `ORT_DYLIB_PATH`,
//! then this repository's Python venv (`reference/.venv`, created by `scripts/test`), whose PyPI
//! `onnxruntime` wheel ships `onnxruntime/capi/libonnxruntime.so.*`. The runtime library itself
//! knows only the first two.

use std::path::{Path, PathBuf};

/// What to do when no library is found, in the binary's terms.
pub const HINT: &str = "no ONNX Runtime library found: pass --ort-lib, set ORT_DYLIB_PATH, or \
    create the project venv (scripts/test does) so that reference/.venv holds the onnxruntime wheel";

/// The library to load: `explicit`, `ORT_DYLIB_PATH`, or the venv's, searched upwards from the
/// working directory and from the binary; `None` when there is none.
pub fn find(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    starts.into_iter().flatten().find_map(|start| {
        start
            .ancestors()
            .find_map(|dir| venv_library(&dir.join("reference/.venv")))
    })
}

/// `libonnxruntime.so.<version>` inside a venv's `onnxruntime` wheel, if present.
fn venv_library(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .filter_map(|e| std::fs::read_dir(e.path().join("site-packages/onnxruntime/capi")).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so"))
        })
        .collect();
    // The versioned name sorts after the bare `.so` link; prefer it, it is the real file.
    found.sort();
    found.pop()
}
