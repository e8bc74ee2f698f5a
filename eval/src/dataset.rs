//! The test images of an anomaly-detection dataset, in the MVTec AD or the VisA layout.
//!
//! MVTec AD: `<root>/<category>/test/<defect>/<stem>.<ext>` (`good` = normal) and
//! `<root>/<category>/ground_truth/<defect>/<stem>_mask.png`.
//! VisA: `<root>/split_csv/1cls.csv` with the header `object,split,label,image,mask`, label
//! `normal` or `anomaly`, paths relative to `<root>`; rows with split `test` are used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Mvtec,
    Visa,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub image: PathBuf,
    pub anomalous: bool,
    /// The ground-truth mask; `None` for normal images and for anomalous ones whose mask is missing.
    pub mask: Option<PathBuf>,
    pub defect: String,
}

/// One category's test samples, and the problems found while listing them.
#[derive(Clone, Debug, Default)]
pub struct Category {
    pub name: String,
    pub samples: Vec<Sample>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {message}")]
    Layout { path: PathBuf, message: String },
    #[error("{path}: cannot read: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: cannot list folder: {error}", path.display())]
    List {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The root holds no test images in `layout`.
    #[error("{}: {}", path.display(), match layout {
        Layout::Mvtec => "no <category>/test folders (MVTec AD layout)",
        Layout::Visa => "split_csv/1cls.csv lists no test images",
    })]
    Empty { path: PathBuf, layout: Layout },
    /// The root is one MVTec AD category (it holds `test/`), not the dataset root above it.
    #[error("{}: one category's folder (it holds test/), not a dataset root (that is {})", path.display(), parent.display())]
    CategoryFolder {
        path: PathBuf,
        /// The dataset root it belongs to.
        parent: PathBuf,
        name: String,
    },
    #[error("{path} line {line}: {message}")]
    Csv {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |error| DatasetError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Whether `path` has one of the image extensions dlvp reads (any case).
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_lowercase().as_str()))
}

/// The images under `dir` (any depth), sorted path by path within each folder, as `detect`,
/// int8 calibration and the threshold command read a folder.
pub fn images_under(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DatasetError> {
        let list = |error| DatasetError::List {
            path: dir.to_path_buf(),
            error,
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(list)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(list)?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out)?;
            } else if is_image(&path) {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    Ok(out)
}

/// SHA-256 over image files — each one's name as given, its length and its bytes, in order — so
/// that a calibration records which images it saw, and the same images give the same digest.
pub fn digest_files(paths: &[PathBuf]) -> Result<String, DatasetError> {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for path in paths {
        let bytes = std::fs::read(path).map_err(io(path))?;
        digest.update(path.to_string_lossy().as_bytes());
        digest.update([0]);
        digest.update((bytes.len() as u64).to_le_bytes());
        digest.update(&bytes);
    }
    Ok(digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `mask` if the file exists; a missing one is a warning naming the image and the mask.
fn existing_mask(
    mask: Option<PathBuf>,
    image: &Path,
    warnings: &mut Vec<String>,
) -> Option<PathBuf> {
    match mask {
        Some(m) if !m.is_file() => {
            warnings.push(format!(
                "{}: mask {} is missing; left out of the pixel metrics",
                image.display(),
                m.display()
            ));
            None
        }
        m => m,
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    v.sort();
    Ok(v)
}

/// The extent of a ground-truth mask: the longer side of the bounding box of its defect pixels,
/// in the mask's pixels (`None` for an empty mask).
pub fn defect_extent(mask: &Path) -> Result<Option<u32>, String> {
    let img = image::open(mask)
        .map_err(|e| format!("{}: cannot read mask: {e}", mask.display()))?
        .to_luma8();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if p[0] > 0 {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    Ok((x0 != u32::MAX).then(|| (x1 - x0 + 1).max(y1 - y0 + 1)))
}

/// `categories` with only the defective samples whose mask's extent ([`defect_extent`]) is at
/// most `max_px` (good samples all kept): how a model does on small defects. A defective sample
/// without a readable mask cannot be sized and is left out, with a warning in its category.
pub fn small_defects_only(categories: &mut [Category], max_px: u32) {
    for category in categories {
        let mut warnings = Vec::new();
        category.samples.retain(|s| {
            if !s.anomalous {
                return true;
            }
            match s.mask.as_deref().map(defect_extent) {
                Some(Ok(Some(extent))) => extent <= max_px,
                Some(Ok(None)) => false,
                Some(Err(e)) => {
                    warnings.push(e);
                    false
                }
                None => {
                    warnings.push(format!(
                        "{}: no mask to size the defect by; left out",
                        s.image.display()
                    ));
                    false
                }
            }
        });
        category.warnings.extend(warnings);
    }
}

/// Lists the test samples of the requested categories (all when empty).
pub fn load(root: &Path, layout: Layout, wanted: &[String]) -> Result<Vec<Category>, DatasetError> {
    if !root.is_dir() {
        return Err(DatasetError::Layout {
            path: root.into(),
            message: "not a folder".into(),
        });
    }
    let all = match layout {
        Layout::Mvtec => mvtec(root)?,
        Layout::Visa => visa(root)?,
    };
    if all.is_empty() && layout == Layout::Mvtec && root.join("test").is_dir() {
        // `--data wood` for `--data . --categories wood`: say so rather than "no categories".
        let full = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        let (parent, name) = match (root.parent(), root.file_name()) {
            (Some(p), Some(n)) => (p.to_path_buf(), n),
            _ => match (full.parent(), full.file_name()) {
                (Some(p), Some(n)) => (p.to_path_buf(), n),
                _ => (full.clone(), full.as_os_str()),
            },
        };
        return Err(DatasetError::CategoryFolder {
            path: root.into(),
            parent: if parent.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                parent
            },
            name: name.to_string_lossy().into_owned(),
        });
    }
    if all.is_empty() {
        return Err(DatasetError::Empty {
            path: root.into(),
            layout,
        });
    }
    if wanted.is_empty() {
        return Ok(all);
    }
    let names: Vec<String> = all.iter().map(|c| c.name.clone()).collect();
    wanted
        .iter()
        .map(|w| {
            all.iter()
                .find(|c| &c.name == w)
                .cloned()
                .ok_or_else(|| DatasetError::Layout {
                    path: root.into(),
                    message: format!("no category {w:?} (have: {})", names.join(", ")),
                })
        })
        .collect()
}

fn mvtec(root: &Path) -> Result<Vec<Category>, DatasetError> {
    let mut out = Vec::new();
    for base in sorted_entries(root)? {
        let test = base.join("test");
        if !test.is_dir() {
            continue;
        }
        let mut cat = Category {
            name: base
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            ..Default::default()
        };
        for defect_dir in sorted_entries(&test)?.into_iter().filter(|p| p.is_dir()) {
            let defect = defect_dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            for image in sorted_entries(&defect_dir)?
                .into_iter()
                .filter(|p| is_image(p))
            {
                let anomalous = defect != "good";
                let mask = anomalous.then(|| {
                    let stem = image.file_stem().unwrap_or_default().to_string_lossy();
                    base.join("ground_truth")
                        .join(&defect)
                        .join(format!("{stem}_mask.png"))
                });
                let mask = existing_mask(mask, &image, &mut cat.warnings);
                cat.samples.push(Sample {
                    image,
                    anomalous,
                    mask,
                    defect: defect.clone(),
                });
            }
        }
        if cat.samples.is_empty() {
            cat.warnings
                .push(format!("{}: no test images", test.display()));
        }
        out.push(cat);
    }
    Ok(out)
}

fn visa(root: &Path) -> Result<Vec<Category>, DatasetError> {
    let csv = root.join("split_csv").join("1cls.csv");
    let text = std::fs::read_to_string(&csv).map_err(io(&csv))?;
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = lines
        .next()
        .map(|(_, l)| l.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| DatasetError::Csv {
                path: csv.clone(),
                line: 1,
                message: format!(
                    "no column {name:?} (expected the header object,split,label,image,mask)"
                ),
            })
    };
    let (c_obj, c_split, c_label, c_image, c_mask) = (
        col("object")?,
        col("split")?,
        col("label")?,
        col("image")?,
        col("mask")?,
    );
    let mut cats: BTreeMap<String, Category> = BTreeMap::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |c: usize| fields.get(c).copied().unwrap_or("");
        if fields.len() < header.len() {
            return Err(DatasetError::Csv {
                path: csv.clone(),
                line: i + 1,
                message: format!("{} fields, expected {}", fields.len(), header.len()),
            });
        }
        if get(c_split) != "test" {
            continue;
        }
        let anomalous = match get(c_label) {
            "anomaly" => true,
            "normal" => false,
            other => {
                return Err(DatasetError::Csv {
                    path: csv.clone(),
                    line: i + 1,
                    message: format!("label {other:?}, expected normal or anomaly"),
                })
            }
        };
        let cat = cats
            .entry(get(c_obj).to_string())
            .or_insert_with(|| Category {
                name: get(c_obj).to_string(),
                ..Default::default()
            });
        let image = root.join(get(c_image));
        let mask = (anomalous && !get(c_mask).is_empty()).then(|| root.join(get(c_mask)));
        let mask = match existing_mask(mask, &image, &mut cat.warnings) {
            None if anomalous && get(c_mask).is_empty() => {
                cat.warnings.push(format!(
                    "{}: no mask listed; left out of the pixel metrics",
                    image.display()
                ));
                None
            }
            m => m,
        };
        cat.samples.push(Sample {
            image,
            anomalous,
            mask,
            defect: if anomalous { "anomaly" } else { "good" }.into(),
        });
    }
    Ok(cats.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn small_defects_are_sized_by_their_masks_bounding_box() {
        let dir = tempfile::tempdir().unwrap();
        let mask = |name: &str, boxes: &[(u32, u32, u32, u32)]| {
            let path = dir.path().join(name);
            let img = image::GrayImage::from_fn(64, 64, |x, y| {
                let inside = boxes
                    .iter()
                    .any(|&(x0, y0, w, h)| (x0..x0 + w).contains(&x) && (y0..y0 + h).contains(&y));
                image::Luma([if inside { 255 } else { 0 }])
            });
            img.save(&path).unwrap();
            path
        };
        let small = mask("small.png", &[(5, 5, 10, 3)]);
        let spread = mask("spread.png", &[(0, 0, 2, 2), (40, 10, 2, 2)]);
        let empty = mask("empty.png", &[]);
        assert_eq!(defect_extent(&small), Ok(Some(10)));
        assert_eq!(defect_extent(&spread), Ok(Some(42)));
        assert_eq!(defect_extent(&empty), Ok(None));
        let sample = |name: &str, anomalous: bool, mask: Option<PathBuf>| Sample {
            image: PathBuf::from(name),
            anomalous,
            mask,
            defect: if anomalous { "d" } else { "good" }.into(),
        };
        let mut categories = vec![Category {
            name: "c".into(),
            samples: vec![
                sample("good.png", false, None),
                sample("small.png", true, Some(small)),
                sample("spread.png", true, Some(spread)),
                sample("unmasked.png", true, None),
            ],
            warnings: vec![],
        }];
        small_defects_only(&mut categories, 40);
        let kept: Vec<_> = categories[0]
            .samples
            .iter()
            .map(|s| s.image.clone())
            .collect();
        assert_eq!(
            kept,
            [PathBuf::from("good.png"), PathBuf::from("small.png")]
        );
        assert!(categories[0].warnings[0].contains("unmasked.png: no mask"));
    }

    #[test]
    fn images_under_a_folder_are_found_at_any_depth_in_sorted_order() {
        let d = tempfile::tempdir().unwrap();
        for p in ["b.png", "a/z.JPG", "a/notes.txt", "a/deeper/c.bmp", "0.tif"] {
            touch(&d.path().join(p));
        }
        let found: Vec<String> = images_under(d.path())
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(d.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(found, ["0.tif", "a/deeper/c.bmp", "a/z.JPG", "b.png"]);
        let missing = d.path().join("nope");
        let err = images_under(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: cannot list folder: ", missing.display())),
            "{err}"
        );
    }

    #[test]
    fn mvtec_layout_lists_masks_and_reports_missing_ones() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        touch(&r.join("wood/test/good/000.png"));
        touch(&r.join("wood/test/crack/000.png"));
        touch(&r.join("wood/test/crack/001.png"));
        touch(&r.join("wood/ground_truth/crack/000_mask.png"));
        std::fs::create_dir_all(r.join("empty/test")).unwrap();
        let cats = load(r, Layout::Mvtec, &[]).unwrap();
        assert_eq!(cats.len(), 2);
        assert_eq!(cats[0].name, "empty");
        assert!(cats[0].warnings[0].contains("no test images"));
        let wood = &cats[1];
        assert_eq!(wood.samples.len(), 3);
        assert_eq!(
            wood.samples[0].mask.as_deref(),
            Some(r.join("wood/ground_truth/crack/000_mask.png").as_path())
        );
        assert!(wood.samples[1].mask.is_none());
        assert!(wood.warnings[0].contains("001.png") && wood.warnings[0].contains("missing"));
        let err = load(r, Layout::Mvtec, &["metal".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no category \"metal\"") && err.contains("wood"),
            "{err}"
        );
        // A category's own folder given as the root: its root and name, to be passed instead.
        match load(&r.join("wood"), Layout::Mvtec, &[]) {
            Err(DatasetError::CategoryFolder { parent, name, .. }) => {
                assert_eq!((parent.as_path(), name.as_str()), (r, "wood"));
            }
            other => panic!("{other:?}"),
        }
        let err = load(&r.join("wood/"), Layout::Mvtec, &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("one category's folder (it holds test/)"),
            "{err}"
        );
    }

    #[test]
    fn visa_layout_reads_the_split_csv() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        touch(&r.join("candle/a.JPG"));
        touch(&r.join("candle/m.png"));
        std::fs::create_dir_all(r.join("split_csv")).unwrap();
        std::fs::write(
            r.join("split_csv/1cls.csv"),
            "object,split,label,image,mask\ncandle,train,normal,candle/t.JPG,\ncandle,test,anomaly,candle/a.JPG,candle/m.png\ncandle,test,normal,candle/n.JPG,\n",
        )
        .unwrap();
        let cats = load(r, Layout::Visa, &[]).unwrap();
        assert_eq!(cats[0].samples.len(), 2);
        assert!(cats[0].samples[0].anomalous && cats[0].samples[0].mask.is_some());
        std::fs::write(
            r.join("split_csv/1cls.csv"),
            "object,split,label,image,mask\ncandle,test,bad,x,\n",
        )
        .unwrap();
        let err = load(r, Layout::Visa, &[]).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("\"bad\""), "{err}");
    }
}
