//! Writing a generated dataset: the demo categories ([`write_categories`]) or the surface
//! universe ([`write_universe`]) into a root folder in the MVTec AD layout, each image and mask
//! written atomically, then a manifest (`demo-data.json` / `universe.json`) that says what is
//! there. Images are rendered on up to 8 threads; every file depends on its item alone, so the
//! bytes do not depend on the scheduling.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use dlvp_contract::atomic_write::{write_atomically, AtomicWriteError};

use crate::universe::{self, defects as universe_defects};
use crate::{defects, plan, render, surfaces, Options};

/// The smallest and largest image side, in pixels.
pub const SIZES: std::ops::RangeInclusive<usize> = 32..=4096;

#[derive(Debug, thiserror::Error)]
pub enum DemoDataError {
    #[error("unknown category {name:?}; expected one of {}", surfaces::CATEGORIES.join(", "))]
    UnknownCategory { name: String },
    #[error("unknown family {name:?}; expected one of {}", universe::FAMILIES.join(", "))]
    UnknownFamily { name: String },
    #[error(
        "unknown defect kind {name:?}; expected a group (generic, physical, subtle, styled), a shape ({}) or finish ({}) of the styled kinds, a styled kind SHAPE_FINISH, or one of {}",
        universe::styles::SHAPES.join(", "),
        universe::styles::FINISHES.join(", "),
        all_universe_kinds().join(", ")
    )]
    UnknownDefect { name: String },
    #[error("the hold-out leaves no family to write")]
    NothingLeft,
    /// `--defects` less `--hold-out-defects` is empty.
    #[error("the defect hold-out leaves no defect kind to draw")]
    NoDefectLeft,
    #[error("size {size}: expected {} to {} pixels", SIZES.start(), SIZES.end())]
    Size { size: usize },
    /// A detail size outside the sizes, or above the image's.
    #[error("detail-size {detail}: expected {} pixels up to the image's size {size}", SIZES.start())]
    Detail { detail: usize, size: usize },
    /// A category or family folder that exists, and replacing was not asked for.
    #[error("{}: already exists", path.display())]
    Exists { path: PathBuf },
    #[error("{}: cannot remove", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot encode PNG", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    #[error("a generator thread panicked")]
    Panicked,
}

fn all_universe_kinds() -> Vec<&'static str> {
    universe_defects::GENERIC
        .iter()
        .chain(&universe_defects::PHYSICAL)
        .chain(&universe_defects::SUBTLE)
        .copied()
        .collect()
}

/// What a run wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// Images (masks not counted).
    pub images: usize,
    /// Categories or families.
    pub folders: usize,
    pub seconds: f64,
}

/// The five demo categories (`names`; all of them when empty) under `out`, as `options` says
/// (its `categories` are replaced by `names`); folders that exist are replaced with `force`,
/// refused without it.
pub fn write_categories(
    out: &Path,
    names: &[String],
    options: &Options,
    force: bool,
) -> Result<Written, DemoDataError> {
    let categories: Vec<String> = if names.is_empty() {
        surfaces::CATEGORIES.iter().map(|s| s.to_string()).collect()
    } else {
        names.to_vec()
    };
    if let Some(name) = categories
        .iter()
        .find(|c| !surfaces::CATEGORIES.contains(&c.as_str()))
    {
        return Err(DemoDataError::UnknownCategory { name: name.clone() });
    }
    check_size(options.size)?;
    if let Some(detail) = options.detail {
        check_detail(detail, options.size)?;
    }
    clear_folders(out, &categories, force)?;
    let opts = Options {
        categories,
        ..options.clone()
    };
    let start = std::time::Instant::now();
    let items = plan(out, &opts);
    for_each_parallel(&items, |item| {
        let (img, mask) = render(item, &opts);
        write_image(&item.image, img, item.mask.as_deref(), mask)
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let summary: serde_json::Map<String, serde_json::Value> = opts
        .categories
        .iter()
        .map(|c| {
            let count = |split: &str, kind: &str| items.iter().filter(|i| &i.category == c && i.split == split && i.kind == kind).count();
            let defects: serde_json::Map<_, _> =
                defects::kinds_for(c).iter().map(|k| (k.to_string(), count("test", k).into())).collect();
            (c.clone(), serde_json::json!({"train_good": count("train", "good"), "test_good": count("test", "good"), "defects": defects}))
        })
        .collect();
    let manifest = serde_json::json!({
        "generator": "dlvp demo-data/1", "seed": opts.seed, "size": opts.size, "layout": "mvtec", "categories": summary,
    });
    let mut manifest = manifest;
    if let Some(detail) = opts.detail {
        manifest["detail_size"] = detail.into();
    }
    write_manifest(&out.join("demo-data.json"), &manifest)?;
    Ok(Written {
        images: items.len(),
        folders: opts.categories.len(),
        seconds,
    })
}

/// What [`write_universe`] writes.
#[derive(Debug, Clone, Default)]
pub struct UniverseRequest {
    /// Families to write (all when empty), less those held out.
    pub families: Vec<String>,
    /// Families left out entirely, also as the foreign texture of other families' defects.
    pub hold_out: Vec<String>,
    /// Defect kinds, the groups generic, physical, subtle, styled, or styled shapes and finishes
    /// (all when empty).
    pub defects: Vec<String>,
    /// Defect kinds left out, named as `defects` names them (for training that holds styles
    /// out).
    pub hold_out_defects: Vec<String>,
    pub count: usize,
    pub train_count: usize,
    pub size: usize,
    pub seed: u64,
}

/// The surface universe under `out` (models/demo/README.md, "The surface universe").
pub fn write_universe(
    out: &Path,
    request: &UniverseRequest,
    force: bool,
) -> Result<Written, DemoDataError> {
    for name in request.families.iter().chain(&request.hold_out) {
        if !universe::FAMILIES.contains(&name.as_str()) {
            return Err(DemoDataError::UnknownFamily { name: name.clone() });
        }
    }
    check_size(request.size)?;
    let wanted: Vec<String> = if request.families.is_empty() {
        universe::FAMILIES.iter().map(|s| s.to_string()).collect()
    } else {
        request.families.clone()
    };
    let families: Vec<String> = wanted
        .into_iter()
        .filter(|f| !request.hold_out.contains(f))
        .collect();
    if families.is_empty() {
        return Err(DemoDataError::NothingLeft);
    }
    let foreign: Vec<String> = universe::FAMILIES
        .iter()
        .map(|s| s.to_string())
        .filter(|f| !request.hold_out.contains(f))
        .collect();
    let named = |words: &[String]| -> Result<Vec<&'static str>, DemoDataError> {
        let mut kinds = Vec::new();
        for word in words {
            kinds.extend(
                universe_defects::expand(word)
                    .ok_or_else(|| DemoDataError::UnknownDefect { name: word.clone() })?,
            );
        }
        Ok(kinds)
    };
    let (selected, held) = (named(&request.defects)?, named(&request.hold_out_defects)?);
    let kinds: Vec<&'static str> = universe_defects::cycle()
        .into_iter()
        .filter(|k| (selected.is_empty() || selected.contains(k)) && !held.contains(k))
        .collect();
    if kinds.is_empty() && request.count > 0 {
        return Err(DemoDataError::NoDefectLeft);
    }
    clear_folders(out, &families, force)?;
    let opts = universe::Options {
        families,
        foreign,
        kinds,
        count: request.count,
        train_count: request.train_count,
        size: request.size,
        seed: request.seed,
    };
    let items = universe::plan(out, &opts);
    let start = std::time::Instant::now();
    for_each_parallel(&items, |item| {
        let (img, mask) = universe::render(item, &opts);
        write_image(&item.image, img, item.mask.as_deref(), mask)
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let summary: serde_json::Map<String, serde_json::Value> = opts
        .families
        .iter()
        .map(|f| {
            let count = |split: &str, kind: &str| {
                items
                    .iter()
                    .filter(|i| &i.family == f && i.split == split && i.kind == kind)
                    .count()
            };
            let mut unique = opts.kinds.clone();
            unique.sort_unstable();
            unique.dedup();
            let defects: serde_json::Map<_, _> = unique
                .iter()
                .map(|k| (k.to_string(), count("test", k).into()))
                .collect();
            (
                f.clone(),
                serde_json::json!({"train_good": count("train", "good"), "test_good": count("test", "good"), "defects": defects}),
            )
        })
        .collect();
    let manifest = serde_json::json!({
        "generator": "dlvp demo-data --universe/2", "seed": opts.seed, "size": opts.size, "layout": "mvtec",
        "hold_out": request.hold_out, "hold_out_defects": request.hold_out_defects,
        "foreign_pool": opts.foreign, "families": summary,
    });
    write_manifest(&out.join("universe.json"), &manifest)?;
    Ok(Written {
        images: items.len(),
        folders: opts.families.len(),
        seconds,
    })
}

fn check_size(size: usize) -> Result<(), DemoDataError> {
    if SIZES.contains(&size) {
        Ok(())
    } else {
        Err(DemoDataError::Size { size })
    }
}

fn check_detail(detail: usize, size: usize) -> Result<(), DemoDataError> {
    if SIZES.contains(&detail) && detail <= size {
        Ok(())
    } else {
        Err(DemoDataError::Detail { detail, size })
    }
}

fn write_manifest(path: &Path, manifest: &serde_json::Value) -> Result<(), DemoDataError> {
    let text = serde_json::to_string_pretty(manifest).expect("a JSON value serialises");
    Ok(write_atomically(path, text.as_bytes())?)
}

/// `work` on every item, on up to 8 threads; each item's output depends on it alone, so the
/// files do not depend on the scheduling.
fn for_each_parallel<T: Sync>(
    items: &[T],
    work: impl Fn(&T) -> Result<(), DemoDataError> + Sync,
) -> Result<(), DemoDataError> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let results: Vec<Result<(), DemoDataError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<(), DemoDataError> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return Ok(());
                        };
                        work(item)?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(DemoDataError::Panicked)))
            .collect()
    });
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

fn write_image(
    path: &Path,
    img: image::RgbImage,
    mask_path: Option<&Path>,
    mask: Option<image::GrayImage>,
) -> Result<(), DemoDataError> {
    write_png(path, &image::DynamicImage::ImageRgb8(img))?;
    if let (Some(path), Some(mask)) = (mask_path, mask) {
        write_png(path, &image::DynamicImage::ImageLuma8(mask))?;
    }
    Ok(())
}

fn write_png(path: &Path, img: &image::DynamicImage) -> Result<(), DemoDataError> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|source| DemoDataError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(write_atomically(path, &bytes)?)
}

/// The category or family folders a run will write, emptied first with `force`, else refused
/// if they exist.
fn clear_folders(out: &Path, names: &[String], force: bool) -> Result<(), DemoDataError> {
    for name in names {
        let dir = out.join(name);
        if dir.exists() {
            if !force {
                return Err(DemoDataError::Exists { path: dir });
            }
            std::fs::remove_dir_all(&dir).map_err(|source| DemoDataError::Remove {
                path: dir.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(categories: &[&str]) -> Options {
        Options {
            categories: categories.iter().map(|s| s.to_string()).collect(),
            count: 4,
            train_count: 1,
            size: 32,
            detail: None,
            seed: 11,
        }
    }

    #[test]
    fn writes_the_mvtec_layout_and_a_manifest_then_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["wood".to_string()];
        let written = write_categories(dir.path(), &names, &small(&[]), false).unwrap();
        assert_eq!((written.images, written.folders), (5, 1));
        assert!(dir.path().join("wood/train/good/000.png").is_file());
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("demo-data.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["categories"]["wood"]["train_good"], 1);
        let again = write_categories(dir.path(), &names, &small(&[]), false).unwrap_err();
        assert!(matches!(&again, DemoDataError::Exists { path } if path.ends_with("wood")));
        write_categories(dir.path(), &names, &small(&[]), true).unwrap();
    }

    #[test]
    fn bad_names_and_sizes_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_categories(dir.path(), &["glass".into()], &small(&[]), false).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("unknown category \"glass\"; expected one of fabric"));
        let tiny = Options {
            size: 8,
            ..small(&[])
        };
        assert!(matches!(
            write_categories(dir.path(), &[], &tiny, false),
            Err(DemoDataError::Size { size: 8 })
        ));
        let request = UniverseRequest {
            hold_out: vec!["velvet".into()],
            size: 32,
            ..Default::default()
        };
        assert!(matches!(
            write_universe(dir.path(), &request, false),
            Err(DemoDataError::UnknownFamily { name }) if name == "velvet"
        ));
        let request = UniverseRequest {
            defects: vec!["smudge".into()],
            size: 32,
            ..Default::default()
        };
        assert!(matches!(
            write_universe(dir.path(), &request, false),
            Err(DemoDataError::UnknownDefect { name }) if name == "smudge"
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
