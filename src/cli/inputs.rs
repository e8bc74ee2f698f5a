//! The images that command-line paths name, each with the name its outputs take under `--out`.
//!
//! A path is a file (taken as it is), a folder (its images at any depth, sorted) or a quoted glob
//! pattern (`**` recurses; sorted). Each image is named by its path **relative to the argument
//! that found it**: a folder's images by their path inside it (`test/hole/000.png`), a glob's by
//! their path below the pattern's first wildcard-free folders, a file by its file name. Under
//! `--out` the outputs mirror that name without its extension (`test/hole/000.overlay.png`),
//! unless two images of the run share a folder and a stem (`rgb.bmp`, `rgb.webp`): those keep
//! their extension (`rgb.bmp.overlay.png`). Two images that still come to one name — the same
//! relative path under two arguments — are refused before anything is scored, never renamed
//! ([`output_names`]). docs/cli.md states the scheme.
//!
//! The output folder is never scored: images under `--out` are set aside with a note
//! ([`Inputs::skipped`]), so a second run over a folder that holds its own outputs scores only
//! the parts.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use dlvp_eval::dataset::{images_under, is_image, IMAGE_EXTENSIONS};

/// One image to score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The file, as found (the path printed and in the JSON).
    pub path: PathBuf,
    /// Its path relative to the argument that found it.
    pub name: PathBuf,
}

/// A path argument that names no image, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The argument, as given.
    pub path: PathBuf,
    /// What is wrong with it (without the path).
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// What the path arguments name.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The images, in argument order, each folder's and pattern's sorted.
    pub files: Vec<Input>,
    /// Arguments that name nothing to score.
    pub problems: Vec<Problem>,
    /// Images left out because they lie under the output folder.
    pub skipped: Vec<PathBuf>,
}

impl Inputs {
    /// The image paths and the problems in words, for commands that name no outputs.
    pub fn into_paths(self) -> (Vec<PathBuf>, Vec<String>) {
        (
            self.files.into_iter().map(|f| f.path).collect(),
            self.problems.iter().map(Problem::to_string).collect(),
        )
    }
}

/// The extensions searched, for a message: `.png, .jpg, …`.
pub fn extensions() -> String {
    IMAGE_EXTENSIONS
        .iter()
        .map(|e| format!(".{e}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The images `paths` name; any under `output` (the `--out` folder, if it exists) are skipped.
pub fn expand(paths: &[PathBuf], output: Option<&Path>) -> Inputs {
    let output = output.and_then(|o| o.canonicalize().ok());
    let mut inputs = Inputs::default();
    let take = |inputs: &mut Inputs, path: PathBuf, name: PathBuf| {
        let inside_output = output.as_ref().is_some_and(|out| {
            path.canonicalize()
                .is_ok_and(|canonical| canonical.starts_with(out))
        });
        if inside_output {
            inputs.skipped.push(path);
        } else {
            inputs.files.push(Input { path, name });
        }
    };
    for path in paths {
        let problem = |message: String| Problem {
            path: path.clone(),
            message,
        };
        if path.is_dir() {
            match images_under(path) {
                Ok(found) if found.is_empty() => inputs.problems.push(problem(format!(
                    "no images in this folder or its subfolders (searched for {})",
                    extensions()
                ))),
                Ok(found) => {
                    for file in found {
                        let name = relative(&file, path);
                        take(&mut inputs, file, name);
                    }
                }
                Err(e) => inputs.problems.push(problem(format!("cannot list: {e}"))),
            }
        } else if path.exists() {
            let name = PathBuf::from(path.file_name().unwrap_or(path.as_os_str()));
            take(&mut inputs, path.clone(), name);
        } else if let Some(pattern) = path.to_str().filter(|p| p.contains(['*', '?', '['])) {
            // A glob the shell did not expand (quoted, or from a script).
            match glob::glob(pattern) {
                Ok(matches) => {
                    let mut found: Vec<PathBuf> = matches
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file() && is_image(p))
                        .collect();
                    found.sort();
                    if found.is_empty() {
                        inputs.problems.push(problem(format!(
                            "the pattern matches no image (of {})",
                            extensions()
                        )));
                    }
                    let base = glob_base(path);
                    for file in found {
                        let name = relative(&file, &base);
                        take(&mut inputs, file, name);
                    }
                }
                Err(e) => inputs
                    .problems
                    .push(problem(format!("bad glob pattern: {e}"))),
            }
        } else {
            inputs
                .problems
                .push(problem("no such file or folder".into()));
        }
    }
    inputs
}

/// `file`'s path below `base` (its file name if it is not below it).
fn relative(file: &Path, base: &Path) -> PathBuf {
    match file.strip_prefix(base) {
        Ok(rest) if !rest.as_os_str().is_empty() => rest.to_path_buf(),
        _ => PathBuf::from(file.file_name().unwrap_or(file.as_os_str())),
    }
}

/// A glob pattern's leading folders without wildcards: `line3/**/*.png` → `line3`.
fn glob_base(pattern: &Path) -> PathBuf {
    let mut base = PathBuf::new();
    for part in pattern.components() {
        let wild =
            matches!(part, Component::Normal(p) if p.to_string_lossy().contains(['*', '?', '[']));
        if wild {
            break;
        }
        base.push(part);
    }
    base
}

/// Two images whose outputs would take one name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} and {} would both write {}.*.png under the output folder; outputs mirror each image's \
     path relative to the argument that found it: name a folder that holds both, or score them \
     into separate --out folders",
    first.display(), second.display(), name.display()
)]
pub struct Collision {
    pub first: PathBuf,
    pub second: PathBuf,
    pub name: PathBuf,
}

/// The output name of each input, in order (`test/hole/000` for `test/hole/000.png`): its name
/// without the extension, or with it when another input shares its folder and stem; the file
/// of kind K is `NAME.K.png` under `--out`.
pub fn output_names(files: &[Input]) -> Result<Vec<PathBuf>, Collision> {
    let key = |name: &Path| {
        (
            name.parent().map(Path::to_path_buf),
            name.file_stem().map(|s| s.to_os_string()),
        )
    };
    let mut stems: HashMap<_, usize> = HashMap::new();
    for f in files {
        *stems.entry(key(&f.name)).or_default() += 1;
    }
    let mut taken: HashMap<PathBuf, &Path> = HashMap::new();
    let mut names = Vec::with_capacity(files.len());
    for f in files {
        let name = if stems[&key(&f.name)] > 1 {
            f.name.clone()
        } else {
            f.name.with_extension("")
        };
        if let Some(first) = taken.insert(name.clone(), &f.path) {
            return Err(Collision {
                first: first.to_path_buf(),
                second: f.path.clone(),
                name,
            });
        }
        names.push(name);
    }
    Ok(names)
}

/// The file of kind `kind` (`overlay`, `map`, `mask`) for output name `name` under `out`.
pub fn output_file(out: &Path, name: &Path, kind: &str) -> PathBuf {
    let mut file = name.as_os_str().to_os_string();
    file.push(format!(".{kind}.png"));
    out.join(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    fn names(inputs: &Inputs) -> Vec<String> {
        inputs
            .files
            .iter()
            .map(|f| f.name.display().to_string())
            .collect()
    }

    #[test]
    fn each_image_is_named_relative_to_the_argument_that_found_it() {
        let d = tempfile::tempdir().unwrap();
        for p in [
            "one.png",
            "wood/test/good/000.png",
            "wood/test/hole/000.png",
            "wood/notes.txt",
            "glob/sub/x1.png",
            "glob/x2.PNG",
            "glob/y.txt",
        ] {
            touch(&d.path().join(p));
        }
        std::fs::create_dir_all(d.path().join("empty/sub")).unwrap();
        let at = |p: &str| d.path().join(p);
        let inputs = expand(
            &[
                at("one.png"),
                at("wood"),
                at("glob/**/x*"),
                at("missing.png"),
                at("glob/z*"),
                at("empty"),
            ],
            None,
        );
        assert_eq!(
            names(&inputs),
            [
                "one.png",
                "test/good/000.png",
                "test/hole/000.png",
                "sub/x1.png",
                "x2.PNG"
            ]
        );
        assert_eq!(inputs.files[1].path, at("wood/test/good/000.png"));
        let problems: Vec<String> = inputs.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].ends_with("missing.png: no such file or folder"));
        assert!(problems[1].contains("glob/z*: the pattern matches no image (of .png"));
        assert!(
            problems[2]
                .contains("empty: no images in this folder or its subfolders (searched for .png")
                && problems[2].contains(".webp"),
            "{}",
            problems[2]
        );
    }

    #[test]
    fn the_output_folder_is_never_scored() {
        let d = tempfile::tempdir().unwrap();
        for p in [
            "today/000.png",
            "today/out/000.overlay.png",
            "today/out/deep/1.png",
        ] {
            touch(&d.path().join(p));
        }
        let today = d.path().join("today");
        let out = today.join("out");
        let inputs = expand(&[today.clone(), out.join("000.overlay.png")], Some(&out));
        assert_eq!(names(&inputs), ["000.png"]);
        assert_eq!(inputs.skipped.len(), 3);
        // Named by another spelling of the same folder: still skipped.
        let dotted = today.join(".").join("out");
        let inputs = expand(std::slice::from_ref(&today), Some(&dotted));
        assert_eq!(names(&inputs), ["000.png"]);
        // An output folder that does not exist yet skips nothing.
        let inputs = expand(&[today], Some(&d.path().join("new")));
        assert_eq!(inputs.files.len(), 3);
    }

    fn input(path: &str, name: &str) -> Input {
        Input {
            path: PathBuf::from(path),
            name: PathBuf::from(name),
        }
    }

    #[rstest]
    #[case::mvtec(
        &[("wood/test/good/000.png", "good/000.png"), ("wood/test/hole/000.png", "hole/000.png")],
        &["good/000", "hole/000"]
    )]
    #[case::same_stem_keeps_extensions(
        &[("a/rgb.bmp", "rgb.bmp"), ("a/rgb.webp", "rgb.webp"), ("a/other.png", "other.png")],
        &["rgb.bmp", "rgb.webp", "other"]
    )]
    #[case::same_stem_in_other_folders(
        &[("a/x.png", "p/x.png"), ("a/q/x.jpg", "q/x.jpg")],
        &["p/x", "q/x"]
    )]
    fn output_names_are_predictable(#[case] files: &[(&str, &str)], #[case] want: &[&str]) {
        let files: Vec<Input> = files.iter().map(|(p, n)| input(p, n)).collect();
        let got: Vec<String> = output_names(&files)
            .unwrap()
            .iter()
            .map(|n| n.display().to_string())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn two_images_of_one_name_are_refused_not_renamed() {
        let files = [input("a/000.png", "000.png"), input("b/000.png", "000.png")];
        let e = output_names(&files).unwrap_err();
        assert_eq!(
            (e.first.to_str(), e.second.to_str()),
            (Some("a/000.png"), Some("b/000.png"))
        );
        assert!(
            e.to_string().contains("would both write 000.png.*.png"),
            "{e}"
        );
    }

    #[test]
    fn output_files_append_the_kind() {
        assert_eq!(
            output_file(Path::new("o"), Path::new("test/hole/000"), "overlay"),
            Path::new("o/test/hole/000.overlay.png")
        );
        assert_eq!(
            output_file(Path::new("o"), Path::new("rgb.bmp"), "map"),
            Path::new("o/rgb.bmp.map.png")
        );
    }
}
