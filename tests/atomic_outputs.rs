//! Atomic outputs: `dlvp export` killed with SIGKILL while its output file is open leaves the
//! previous file intact and no partial file beside it.
//!
//! The test watches the child's open file descriptors (`/proc/PID/fd`) and kills it the moment
//! one of them lies in the output folder — that is, mid-write, deterministically, without a test
//! hook in the binary. Linux only (procfs), like the rest of the suite.

use std::path::Path;
use std::process::{Command, Stdio};

use dlvp_test_support::run;
use run::{export, golden_weights};

/// Whether process `pid` has a file open inside `folder` (an unnamed O_TMPFILE shows as
/// `folder/#inode (deleted)`, a named temporary file under its own name).
fn has_open_file_in(pid: u32, folder: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| target.starts_with(folder))
}

#[test]
fn export_killed_mid_write_leaves_the_previous_file_and_no_partial_one() {
    let dir = tempfile::tempdir().unwrap();
    let complete = dir.path().join("reference.onnx");
    export(&golden_weights(), &complete);
    let complete = std::fs::read(&complete).unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    // /proc shows resolved paths.
    let out = dir.path().join("out").canonicalize().unwrap();
    let target = out.join("model.onnx");
    let previous = b"previous model, still in use by the line".to_vec();

    let mut killed_mid_write = 0;
    for _attempt in 0..50 {
        std::fs::write(&target, &previous).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dlvp"))
            .args(["export", "--weights"])
            .arg(golden_weights())
            .arg("--out")
            .arg(&target)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let killed = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            if has_open_file_in(pid, &out) {
                // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
                assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
                break true;
            }
        };
        let status = child.wait().unwrap();
        let now = std::fs::read(&target).unwrap();
        assert!(
            now == previous || now == complete,
            "{}: {} bytes, neither the previous file nor a complete export",
            target.display(),
            now.len()
        );
        for entry in std::fs::read_dir(&out).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == "model.onnx.json") {
                // The sidecar, written after the model (or not yet): always whole JSON.
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                    "{text}"
                );
                continue;
            }
            if path != target {
                // Killed between naming the finished file and renaming it: complete, never partial.
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    bytes == complete,
                    "{}: a partial file ({} of {} bytes)",
                    path.display(),
                    bytes.len(),
                    complete.len()
                );
                std::fs::remove_file(path).unwrap();
            }
        }
        if killed && status.code().is_none() && now == previous {
            killed_mid_write += 1;
            if killed_mid_write == 5 {
                break;
            }
        }
    }
    assert!(
        killed_mid_write > 0,
        "export never caught with its output open in 50 runs"
    );
}
