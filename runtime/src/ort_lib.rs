//! Locating and loading the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic` (nothing is downloaded at build time), so the library is
//! found at run time: the path the caller gives, else the `ORT_DYLIB_PATH` environment variable
//! (ort's own convention). Where a program looks beyond that (the `dlvp` binary also tries the
//! project's Python venv) is the program's business, not this library's.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OrtLibError {
    #[error("ONNX Runtime library {}: no such file", path.display())]
    NotFound { path: PathBuf },
    #[error("no ONNX Runtime library: none was given and ORT_DYLIB_PATH is not set")]
    NotLocated,
    #[error("cannot load ONNX Runtime from {}: {message}", path.display())]
    Load { path: PathBuf, message: String },
}

/// Finds the library without loading it: `explicit`, else `ORT_DYLIB_PATH`.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, OrtLibError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => std::env::var_os("ORT_DYLIB_PATH")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .ok_or(OrtLibError::NotLocated)?,
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(OrtLibError::NotFound { path })
    }
}

/// The loaded library and the process-wide ONNX Runtime environment sessions are made in.
#[derive(Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub environment: ort::environment::Environment,
}

/// The library once it has loaded; a failure is not kept, so a later call may name another path.
static LOADED: Mutex<Option<Loaded>> = Mutex::new(None);

/// Loads the library once per process and builds the environment. ONNX Runtime can be loaded
/// only once, so after a success every call returns that library, whatever path it names; after
/// a failure (no such file, a library older than ort's API floor — ONNX Runtime 1.17 —, not a
/// library at all) nothing is kept and the next call tries again with its own path.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, OrtLibError> {
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = loaded.as_ref() {
        return Ok(l.clone());
    }
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
    let l = Loaded {
        path: path.clone(),
        environment,
    };
    *loaded = Some(l.clone());
    Ok(l)
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
