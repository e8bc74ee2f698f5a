//! Gates for tests that need a tool the test command may or may not provide: ONNX Runtime's
//! and OpenVINO's libraries, headless Chromium, the built C++ examples.
//!
//! Without the tool a test skips and says why on stderr. When the test command was supposed to
//! provide it, it sets `DLVP_REQUIRE_<TOOL>` (scripts/test does, and always in CI) and the same
//! test fails instead: a skip can then never pass for a green run.

use std::ffi::OsString;
use std::path::PathBuf;

/// The gate itself: `found` when present; otherwise a panic if `require` is set, else a skip line.
fn gate<T>(found: Option<T>, what: &str, require: &str, hint: &str) -> Option<T> {
    if found.is_some() {
        return found;
    }
    if std::env::var_os(require).is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("{require} is set but {what} is missing: {hint}");
    }
    eprintln!("skipped: needs {what}; {hint}");
    None
}

fn non_empty(var: &str) -> Option<OsString> {
    std::env::var_os(var).filter(|v| !v.is_empty())
}

/// The ONNX Runtime library named by `ORT_DYLIB_PATH` (required under `DLVP_REQUIRE_ORT`).
pub fn onnxruntime() -> Option<PathBuf> {
    gate(
        non_empty("ORT_DYLIB_PATH").map(PathBuf::from),
        "ONNX Runtime",
        "DLVP_REQUIRE_ORT",
        "set ORT_DYLIB_PATH to libonnxruntime.so.* (scripts/test sets it to the venv's onnxruntime)",
    )
}

/// OpenVINO's C library named by `DLVP_OPENVINO_LIB` (required under `DLVP_REQUIRE_OPENVINO`).
pub fn openvino() -> Option<PathBuf> {
    gate(
        non_empty("DLVP_OPENVINO_LIB").map(PathBuf::from),
        "OpenVINO",
        "DLVP_REQUIRE_OPENVINO",
        "set DLVP_OPENVINO_LIB to libopenvino_c.so.* (scripts/test sets it to the venv's openvino wheel)",
    )
}

/// The oldest ONNX Runtime library dlvp supports (1.19.x), named by `DLVP_ORT_FLOOR_LIB`
/// (required under `DLVP_REQUIRE_ORT_FLOOR`).
pub fn onnxruntime_floor() -> Option<PathBuf> {
    gate(
        non_empty("DLVP_ORT_FLOOR_LIB").map(PathBuf::from),
        "the oldest supported ONNX Runtime",
        "DLVP_REQUIRE_ORT_FLOOR",
        "set DLVP_ORT_FLOOR_LIB to libonnxruntime.so.1.19.* from the onnxruntime==1.19.2 wheel (scripts/test installs it)",
    )
}

/// A headless Chromium to run (required under `DLVP_REQUIRE_CHROMIUM`).
pub fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    gate(
        found,
        "chromium",
        "DLVP_REQUIRE_CHROMIUM",
        "install Debian's `chromium` (scripts/test does when it runs as root)",
    )
}

/// examples/cpp's `dlvp_detect`, named by `DLVP_CPP_EXAMPLE` (required under
/// `DLVP_REQUIRE_CPP_EXAMPLE`).
pub fn cpp_example() -> Option<PathBuf> {
    gate(
        non_empty("DLVP_CPP_EXAMPLE").map(PathBuf::from),
        "the C++ example",
        "DLVP_REQUIRE_CPP_EXAMPLE",
        "set DLVP_CPP_EXAMPLE to examples/cpp's dlvp_detect (scripts/test builds it where cmake, g++ and OpenCV are installed)",
    )
}

/// examples/cpp's `dlvp_stream` (the GStreamer example), named by `DLVP_STREAM_EXAMPLE`
/// (required under `DLVP_REQUIRE_STREAM_EXAMPLE`).
pub fn stream_example() -> Option<PathBuf> {
    gate(
        non_empty("DLVP_STREAM_EXAMPLE").map(PathBuf::from),
        "the GStreamer example",
        "DLVP_REQUIRE_STREAM_EXAMPLE",
        "set DLVP_STREAM_EXAMPLE to examples/cpp's dlvp_stream (scripts/test builds it where cmake, g++ and Debian's GStreamer packages are installed)",
    )
}

#[cfg(test)]
mod tests {
    use super::gate;

    #[test]
    fn a_present_tool_passes_through() {
        assert_eq!(gate(Some(3), "x", "DLVP_TEST_GATE_UNSET", "h"), Some(3));
    }

    #[test]
    fn a_missing_tool_skips_unless_required() {
        assert_eq!(gate::<u8>(None, "x", "DLVP_TEST_GATE_UNSET", "h"), None);
    }

    #[test]
    #[should_panic(expected = "PATH is set but a tool is missing: install it")]
    fn a_missing_required_tool_fails() {
        // PATH is always set: it stands for a DLVP_REQUIRE_* variable that the test command set.
        gate::<u8>(None, "a tool", "PATH", "install it");
    }
}
