//! Locating and loading the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic` (nothing is downloaded at build time), so the library is
//! found at run time, in this order: an explicit path (`--ort-lib`), the `ORT_DYLIB_PATH`
//! environment variable, then the project's own Python venv (`reference/.venv`, created by
//! `scripts/test`), whose PyPI `onnxruntime` wheel ships `onnxruntime/capi/libonnxruntime.so.*`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OrtLibError {
    #[error("ONNX Runtime library {}: no such file", path.display())]
    NotFound { path: PathBuf },
    #[error(
        "no ONNX Runtime library found: pass --ort-lib, set ORT_DYLIB_PATH, or create the project venv \
         (scripts/test does) so that reference/.venv holds the onnxruntime wheel"
    )]
    NotLocated,
    #[error("cannot load ONNX Runtime from {}: {message}", path.display())]
    Load { path: PathBuf, message: String },
}

/// Finds the library without loading it.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, OrtLibError> {
    let existing = |path: PathBuf| {
        if path.is_file() {
            Ok(path)
        } else {
            Err(OrtLibError::NotFound { path })
        }
    };
    if let Some(path) = explicit {
        return existing(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return existing(PathBuf::from(path));
    }
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors() {
            if let Some(lib) = venv_library(&dir.join("reference/.venv")) {
                return Ok(lib);
            }
        }
    }
    Err(OrtLibError::NotLocated)
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

/// The loaded library and the process-wide ONNX Runtime environment sessions are made in.
#[derive(Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub environment: ort::environment::Environment,
}

static LOADED: OnceLock<Result<Loaded, OrtLibError>> = OnceLock::new();

/// Loads the library once per process and builds the environment. ONNX Runtime can be loaded
/// only once, so a later call with another path returns the first outcome. A library older than
/// ort's API floor (ONNX Runtime 1.17) is a `Load` error naming the version found.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, OrtLibError> {
    LOADED
        .get_or_init(|| {
            let path = locate(explicit)?;
            let fail = |message: String| OrtLibError::Load {
                path: path.clone(),
                message,
            };
            let builder = ort::init_from(&path).map_err(|e| fail(e.to_string()))?;
            let environment = builder
                .with_name("dlvp")
                .build()
                .map_err(|e| fail(e.to_string()))?;
            Ok(Loaded {
                path: path.clone(),
                environment,
            })
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_that_does_not_exist_is_named() {
        let err = locate(Some(Path::new("/nonexistent/libonnxruntime.so.1"))).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/libonnxruntime.so.1"),
            "{err}"
        );
    }

    #[test]
    fn loads_the_library_the_test_command_provides() {
        if dlvp_test_support::gate::onnxruntime().is_none() {
            return;
        }
        // ort itself refuses a library older than its API floor (1.17) at this point.
        let path = load(None)
            .expect("ORT_DYLIB_PATH names a loadable ONNX Runtime")
            .path;
        assert!(path.is_file());
        assert_eq!(load(None).unwrap().path, path, "loaded once per process");
        assert!(!ort::info().is_empty());
    }
}
