//! Where the `dlvp` binary looks for ONNX Runtime's library: `--ort-lib`, then `ORT_DYLIB_PATH`,
//! then this repository's Python venv (`reference/.venv`, created by `scripts/test`), whose PyPI
//! `onnxruntime` wheel ships `onnxruntime/capi/libonnxruntime.so.*`. The runtime library itself
//! knows only the first two. OpenVINO's C library is found the same way: `--ov-lib`, then
//! `DLVP_OPENVINO_LIB`, then the venv's `openvino` wheel (`openvino/libs/libopenvino_c.so.*`).

use std::path::{Path, PathBuf};

/// What to do when no library is found, in the binary's terms.
pub const HINT: &str = "no ONNX Runtime library found: pass --ort-lib, set ORT_DYLIB_PATH, or \
    create the project venv (scripts/test does) so that reference/.venv holds the onnxruntime wheel";

/// The library to load: `explicit`, `ORT_DYLIB_PATH`, or the venv's, searched upwards from the
/// working directory and from the binary; `None` when there is none.
pub fn find(explicit: Option<&Path>) -> Option<PathBuf> {
    find_library(
        explicit,
        "ORT_DYLIB_PATH",
        "onnxruntime/capi",
        "libonnxruntime.so",
    )
}

/// `explicit`, else the environment variable `env`, else the project venv's `folder/prefix*`.
fn find_library(explicit: Option<&Path>, env: &str, folder: &str, prefix: &str) -> Option<PathBuf> {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os(env)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| in_project_venv(folder, prefix))
}

/// The file named `prefix*` in `site-packages/<folder>` of a venv (any python3.x), if present;
/// the last in name order, so a versioned name wins over the bare `.so` link.
fn venv_file(venv: &Path, folder: &str, prefix: &str) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .filter_map(|e| std::fs::read_dir(e.path().join("site-packages").join(folder)).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    found.sort();
    found.pop()
}

/// The project venv's file `prefix*` in `site-packages/<folder>`, searched upwards from the
/// working directory and from the binary.
fn in_project_venv(folder: &str, prefix: &str) -> Option<PathBuf> {
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    starts.into_iter().flatten().find_map(|start| {
        start
            .ancestors()
            .find_map(|dir| venv_file(&dir.join("reference/.venv"), folder, prefix))
    })
}

/// What to do when OpenVINO's library is not found, in the binary's terms.
pub const OPENVINO_HINT: &str = "no OpenVINO library found: pass --ov-lib, set DLVP_OPENVINO_LIB, \
    or create the project venv (scripts/test does) so that reference/.venv holds the openvino wheel";

/// OpenVINO's `libopenvino_c`: `explicit`, `DLVP_OPENVINO_LIB`, or the project venv's.
pub fn find_openvino(explicit: Option<&Path>) -> Option<PathBuf> {
    find_library(
        explicit,
        dlvp_runtime::openvino_backend::LIBRARY_ENV,
        "openvino/libs",
        "libopenvino_c.so",
    )
}
