//! Writing an output file so that no reader, and no crash, ever sees part of it.
//!
//! On Linux the bytes go to an unnamed file in the destination folder (`O_TMPFILE`): until it is
//! complete and synced it has no name at all, so a `kill -9` or a full disk mid-write leaves
//! nothing behind. It is then given a hidden temporary name and renamed over the destination
//! (rename is atomic within a folder; linking straight onto an existing name is not possible).
//! Where the folder's file system has no `O_TMPFILE`, a named hidden temporary file is used
//! instead and removed on error.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file that could not be written: its path, what failed, and the system's error.
#[derive(Debug, thiserror::Error)]
#[error("{}: {what}", path.display())]
pub struct AtomicWriteError {
    pub path: PathBuf,
    /// `cannot create folder`, `not a file path`, `cannot write`.
    pub what: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// Writes `bytes` to `path` atomically; a missing parent folder is created.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    write_atomically_with(path, |file| file.write_all(bytes))
}

/// Writes what `fill` writes into the file to `path` atomically: [`write_atomically`] for
/// contents produced as they are written (an ONNX model encoded straight into the file). `fill`
/// may be called a second time, on a fresh file, when the first route fails on this system.
pub fn write_atomically_with(
    path: &Path,
    mut fill: impl FnMut(&mut File) -> std::io::Result<()>,
) -> Result<(), AtomicWriteError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|source| AtomicWriteError {
        path: dir.clone(),
        what: "cannot create folder",
        source,
    })?;
    let name = path.file_name().ok_or_else(|| AtomicWriteError {
        path: path.to_path_buf(),
        what: "not a file path",
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"),
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        unique()
    ));
    let result = match unnamed_file(&dir) {
        Some(file) => write_unnamed(file, &mut fill, &tmp, path),
        None => write_named(&mut fill, &tmp, path),
    };
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(AtomicWriteError {
            path: path.to_path_buf(),
            what: "cannot write",
            source: e,
        });
    }
    Ok(())
}

/// A counter that keeps temporary names distinct between threads of one process.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

type Fill<'a> = dyn FnMut(&mut File) -> std::io::Result<()> + 'a;

fn write_named(fill: &mut Fill, tmp: &Path, path: &Path) -> std::io::Result<()> {
    let mut file = File::create(tmp)?;
    fill(&mut file)?;
    file.sync_all()?;
    std::fs::rename(tmp, path)
}

#[cfg(target_os = "linux")]
fn unnamed_file(dir: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .mode(0o666)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn unnamed_file(_dir: &Path) -> Option<File> {
    None
}

#[cfg(target_os = "linux")]
fn write_unnamed(mut file: File, fill: &mut Fill, tmp: &Path, path: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    fill(&mut file)?;
    file.sync_all()?;
    // linkat through /proc/self/fd needs no privilege (AT_EMPTY_PATH on the fd would).
    let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let to = CString::new(tmp.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc != 0 {
        let linked = std::io::Error::last_os_error();
        // No /proc (some containers): fall back to a named file, written afresh.
        return if linked.raw_os_error() == Some(libc::ENOENT) {
            write_named(fill, tmp, path)
        } else {
            Err(linked)
        };
    }
    std::fs::rename(tmp, path)
}

#[cfg(not(target_os = "linux"))]
fn write_unnamed(_file: File, fill: &mut Fill, tmp: &Path, path: &Path) -> std::io::Result<()> {
    write_named(fill, tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.bin");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.bin"]);
    }

    #[test]
    fn a_folder_in_the_way_is_an_error_naming_the_path_and_the_folder_survives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).unwrap();
        let err = write_atomically(&path, b"x").unwrap_err();
        assert!(err.to_string().ends_with("taken: cannot write"), "{err}");
        assert_eq!(err.path, path);
        assert!(path.is_dir());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
