//! A failed ONNX Runtime load is not kept for the life of the process: after a path that does not
//! load, the library the test command provides still does. A test binary of its own, so that the
//! failure comes first in its process (ONNX Runtime loads once per process).
#![cfg(feature = "ort")]

use std::path::Path;

use dlvp_runtime::ort_lib::{load, OrtLibError};

#[test]
fn a_failed_load_can_be_retried_with_another_path() {
    let Some(good) = dlvp_test_support::gate::onnxruntime() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let not_a_library = dir.path().join("libonnxruntime.so.1.99.0");
    std::fs::write(&not_a_library, b"not a shared library").unwrap();
    for bad in [Path::new("/nonexistent/libonnxruntime.so"), &not_a_library] {
        match load(Some(bad)) {
            Err(OrtLibError::NotFound { path } | OrtLibError::Load { path, .. }) => {
                assert_eq!(path, bad)
            }
            Err(e) => panic!("{}: unexpected error {e}", bad.display()),
            Ok(_) => panic!("{} loaded", bad.display()),
        }
    }
    let loaded = load(Some(&good)).expect("the good library loads after the failures");
    assert_eq!(loaded.path, good);
    // Loaded once: another path now returns the same library.
    assert_eq!(load(Some(&not_a_library)).unwrap().path, good);
}
