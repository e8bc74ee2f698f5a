//! Tiled inference for high-resolution images: overlapping S×S tiles (S the graph's input size)
//! taken from the image at native resolution or a chosen scale, run in batches, their maps
//! blended with a smooth window into one map at the image's size, and the image's score the
//! largest tile score.
//!
//! A 20 px scratch on a 2448×2048 frame resized to 224 px is 2 px, under one patch; tiled at
//! native resolution it stays 20 px in a 224 px tile.
//!
//! - **Grid.** Along each axis of the (scaled) image, ⌈(L − S) / (S·(1 − overlap))⌉ + 1 tiles,
//!   spread evenly so the first starts at 0 and the last ends at L ([`TileGrid`]). An axis shorter
//!   than S is scaled up to S (as the untiled resize would stretch it).
//! - **Blending.** Each tile's map is weighted by the separable window w(u)·w(v), w(u) =
//!   max(sin²(π(u + ½)/S), 10⁻³), and the map is Σ w·m / Σ w. The weights fall smoothly to the
//!   tile's edges, so no tile border shows as a step; because the grid is a product of x and y
//!   positions, Σ w is the product of two 1-D sums and only the numerator is kept at full size —
//!   one f32 map, the output itself, whatever the number of tiles ([`blend`]).
//! - **Score.** The image's `anomaly_score` is the largest of its tiles': a defect in one tile of
//!   forty makes the image anomalous, where a mean would dilute it forty-fold. More tiles raise
//!   good images' largest score too, so a decision threshold must be calibrated with the same
//!   tiling (`dlvp threshold --tile`), which the graph then records.
//! - **Memory.** The image, its scaled copy (when the scale is not 1), one batch of tiles and the
//!   blended map; tiles are cut per batch and dropped after it.
//!
//! model-spec/README.md, "Tiled inference", states the same for users.

use image::RgbImage;
use ndarray::Array2;

use crate::detector::{DetectError, Detector};
use crate::postprocess::resize_map;
use crate::preprocess::resize_rgb8;
pub use crate::tile_options::TileOptions;

/// The tiles' top-left corners on the scaled image, a product of x and y positions.
#[derive(Debug, Clone, PartialEq)]
pub struct TileGrid {
    /// The scaled image's size.
    pub width: usize,
    pub height: usize,
    /// The tile's side, the graph's input size.
    pub tile: usize,
    pub xs: Vec<usize>,
    pub ys: Vec<usize>,
}

/// Tile starts along an axis of `len` ≥ `tile`: evenly spread, first at 0, last at len − tile.
fn positions(len: usize, tile: usize, overlap: f32) -> Vec<usize> {
    if len <= tile {
        return vec![0];
    }
    let stride = ((tile as f64 * (1.0 - overlap as f64)).floor() as usize).max(1);
    let n = (len - tile).div_ceil(stride) + 1;
    (0..n)
        .map(|i| ((i * (len - tile)) as f64 / (n - 1) as f64).round() as usize)
        .collect()
}

impl TileGrid {
    /// The grid on a `width`×`height` (scaled) image, each side at least `tile`.
    pub fn new(width: usize, height: usize, tile: usize, overlap: f32) -> TileGrid {
        TileGrid {
            width,
            height,
            tile,
            xs: positions(width, tile, overlap),
            ys: positions(height, tile, overlap),
        }
    }

    /// Every tile's corner, row by row.
    pub fn corners(&self) -> Vec<(usize, usize)> {
        self.ys
            .iter()
            .flat_map(|&y| self.xs.iter().map(move |&x| (x, y)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.xs.len() * self.ys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The blending window along one axis of a tile: sin² rising from the edges, floored so that a
/// pixel on the image's border, which one tile alone covers, keeps a weight.
pub fn window(tile: usize) -> Vec<f32> {
    (0..tile)
        .map(|u| {
            let s = (std::f64::consts::PI * (u as f64 + 0.5) / tile as f64).sin();
            (s * s).max(1e-3) as f32
        })
        .collect()
}

/// Accumulates tile maps into one blended map over a grid ([`TileGrid`]): Σ w·m in a full-size
/// buffer, Σ w as the product of the two axes' sums.
pub struct Blend {
    grid: TileGrid,
    window: Vec<f32>,
    numerator: Array2<f32>,
}

impl Blend {
    pub fn new(grid: TileGrid) -> Blend {
        let window = window(grid.tile);
        let numerator = Array2::zeros((grid.height, grid.width));
        Blend {
            grid,
            window,
            numerator,
        }
    }

    /// Adds the `tile`×`tile` map of the tile whose corner is (x, y).
    pub fn add(&mut self, (x, y): (usize, usize), map: &Array2<f32>) {
        let t = self.grid.tile;
        debug_assert_eq!(map.dim(), (t, t));
        for v in 0..t {
            let wy = self.window[v];
            let row = self.numerator.row_mut(y + v);
            let row = row.into_slice().expect("a standard-layout row");
            for (u, (out, &m)) in row[x..x + t].iter_mut().zip(map.row(v)).enumerate() {
                *out += wy * self.window[u] * m;
            }
        }
    }

    /// The blended map at the grid's (scaled) size.
    pub fn finish(self) -> Array2<f32> {
        let sums = |len: usize, starts: &[usize]| {
            let mut s = vec![0f32; len];
            for &p in starts {
                for (u, w) in self.window.iter().enumerate() {
                    s[p + u] += w;
                }
            }
            s
        };
        let (dx, dy) = (
            sums(self.grid.width, &self.grid.xs),
            sums(self.grid.height, &self.grid.ys),
        );
        let mut map = self.numerator;
        for (y, mut row) in map.rows_mut().into_iter().enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                *v /= dx[x] * dy[y];
            }
        }
        map
    }
}

/// One tile's result, its place in the image's own pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct TileResult {
    /// The tile's top-left corner and side in the original image's pixels.
    pub x: f32,
    pub y: f32,
    pub side: f32,
    pub score: f32,
    /// SLFS's selected patches within the tile (row-major on its patch grid).
    pub topk: Vec<i64>,
}

/// A tiled image's result.
#[derive(Debug, Clone)]
pub struct Tiled {
    /// The largest tile score.
    pub score: f32,
    /// The blended map at the image's size.
    pub map: Array2<f32>,
    pub tiles: Vec<TileResult>,
}

impl Tiled {
    /// The highest-scoring tile's Top-K (the patches behind the image's score), empty without
    /// tiles.
    pub fn best_topk(&self) -> Vec<i64> {
        self.tiles
            .iter()
            .max_by(|a, b| a.score.total_cmp(&b.score))
            .map(|t| t.topk.clone())
            .unwrap_or_default()
    }
}

/// One image being tiled, for a caller that runs the graph its own way (`dlvp serve` through its
/// batcher; [`detect_tiled`] through a [`Detector`]): the scaled frame and its grid, the tiles cut
/// on demand, their results blended as they come.
pub struct TiledImage<'a> {
    source: std::borrow::Cow<'a, RgbImage>,
    /// The frame as given, kept beside a scaled `source` for [`TiledImage::finish_with_image`].
    original: Option<RgbImage>,
    /// Whether [`TiledImage::finish_with_image`] hands the frame back.
    keep: bool,
    size: (usize, usize),
    blend: Blend,
    tiles: Vec<TileResult>,
    tile: usize,
}

impl<'a> TiledImage<'a> {
    /// `image` scaled by `options.scale` (each side at least `tile`, with the graph's resize
    /// `filter`) and gridded.
    pub fn new(
        image: &'a RgbImage,
        tile: usize,
        options: &TileOptions,
        filter: dlvp_contract::spec::ResizeFilter,
    ) -> TiledImage<'a> {
        TiledImage::from_cow(
            std::borrow::Cow::Borrowed(image),
            false,
            tile,
            options,
            filter,
        )
    }

    /// As [`TiledImage::new`], owning the frame, for a caller that moves the tiling between
    /// threads (the pipeline); with `keep`, [`TiledImage::finish_with_image`] hands the frame back
    /// (at scale 1 it is the tiles' source itself, not a copy).
    pub fn owning(
        image: RgbImage,
        keep: bool,
        tile: usize,
        options: &TileOptions,
        filter: dlvp_contract::spec::ResizeFilter,
    ) -> TiledImage<'static> {
        TiledImage::from_cow(std::borrow::Cow::Owned(image), keep, tile, options, filter)
    }

    fn from_cow(
        image: std::borrow::Cow<'a, RgbImage>,
        keep: bool,
        tile: usize,
        options: &TileOptions,
        filter: dlvp_contract::spec::ResizeFilter,
    ) -> TiledImage<'a> {
        let size = (image.width() as usize, image.height() as usize);
        let (sw, sh) = scaled_size(size, tile, options);
        let (source, original) = if (sw, sh) == size {
            (image, None)
        } else {
            let scaled = resize_rgb8(&image, sw, sh, filter);
            (
                std::borrow::Cow::Owned(scaled),
                keep.then(|| image.into_owned()),
            )
        };
        TiledImage {
            source,
            original,
            keep,
            size,
            blend: Blend::new(TileGrid::new(sw, sh, tile, options.overlap)),
            tiles: Vec::new(),
            tile,
        }
    }

    /// The number of tiles.
    pub fn len(&self) -> usize {
        self.blend.grid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blend.grid.is_empty()
    }

    /// Every tile's corner on the scaled frame, in the order results must be added.
    pub fn corners(&self) -> Vec<(usize, usize)> {
        self.blend.grid.corners()
    }

    /// The tiles at `corners`, S×S RGB each.
    pub fn crops(&self, corners: &[(usize, usize)]) -> Vec<RgbImage> {
        let t = self.tile as u32;
        corners
            .iter()
            .map(|&(x, y)| {
                image::imageops::crop_imm(self.source.as_ref(), x as u32, y as u32, t, t).to_image()
            })
            .collect()
    }

    /// Runs every tile through `detector`, `batch` per graph run, and adds the results; returns
    /// the number of graph runs.
    pub fn score(&mut self, detector: &Detector, batch: usize) -> Result<usize, DetectError> {
        let corners = self.corners();
        let mut runs = 0;
        for chunk in corners.chunks(batch.max(1)) {
            let crops = self.crops(chunk);
            for (&corner, det) in chunk.iter().zip(detector.detect_batch(&crops)?) {
                self.add(corner, det.score, &det.map, det.topk);
            }
            runs += 1;
        }
        Ok(runs)
    }

    /// Adds the tile at `corner`'s score, map (S×S) and Top-K.
    pub fn add(&mut self, corner: (usize, usize), score: f32, map: &Array2<f32>, topk: Vec<i64>) {
        let (sw, sh) = (self.blend.grid.width, self.blend.grid.height);
        let (fx, fy) = (
            self.size.0 as f32 / sw as f32,
            self.size.1 as f32 / sh as f32,
        );
        self.blend.add(corner, map);
        self.tiles.push(TileResult {
            x: corner.0 as f32 * fx,
            y: corner.1 as f32 * fy,
            side: self.tile as f32 * fx.max(fy),
            score,
            topk,
        });
    }

    /// The blended map at the image's size and the largest tile score.
    pub fn finish(self) -> Tiled {
        self.finish_with_image().0
    }

    /// As [`TiledImage::finish`], and the frame [`TiledImage::owning`] was given when it was
    /// asked to keep it.
    pub fn finish_with_image(self) -> (Tiled, Option<RgbImage>) {
        let frame = match (self.keep, self.original, self.source) {
            (false, _, _) => None,
            (true, Some(original), _) => Some(original),
            (true, None, source) => Some(source.into_owned()),
        };
        let scaled = (self.blend.grid.width, self.blend.grid.height);
        let blended = self.blend.finish();
        let (w, h) = self.size;
        let map = if scaled == (w, h) {
            blended
        } else {
            resize_map(&blended, w, h)
        };
        // A tile that scores NaN makes the frame's score NaN (so NG): `f32::max` would drop it.
        let score = self.tiles.iter().map(|t| t.score).fold(f32::MIN, |a, b| {
            if a.is_nan() || b.is_nan() {
                f32::NAN
            } else {
                a.max(b)
            }
        });
        let tiled = Tiled {
            score,
            map,
            tiles: self.tiles,
        };
        (tiled, frame)
    }
}

/// The frame's size once scaled for tiling: `options.scale` of each side, at least one tile.
fn scaled_size((w, h): (usize, usize), tile: usize, options: &TileOptions) -> (usize, usize) {
    let side = |len: usize| ((len as f64 * options.scale as f64).round() as usize).max(tile);
    (side(w), side(h))
}

/// Scores `image` tile by tile, `batch` tiles per graph run ([`TileOptions`]).
pub fn detect_tiled(
    detector: &Detector,
    image: &RgbImage,
    options: &TileOptions,
    batch: usize,
) -> Result<Tiled, DetectError> {
    let spec = &detector.info().spec;
    let mut tiled = TiledImage::new(image, spec.image_size, options, spec.preprocess.resize);
    tiled.score(detector, batch)?;
    Ok(tiled.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case::one_tile(224, 224, 0.25, vec![0])]
    #[case::shorter_than_a_tile(100, 224, 0.25, vec![0])]
    #[case::two(300, 224, 0.25, vec![0, 76])]
    // stride ⌊224 × 0.75⌋ = 168; ⌈2224 / 168⌉ + 1 = 15 tiles, spread over 2224.
    #[case::line_camera(2448, 224, 0.25, (0..15).map(|i| (i as f64 * 2224.0 / 14.0).round() as usize).collect())]
    #[case::no_overlap(448, 224, 0.0, vec![0, 224])]
    fn tiles_start_at_zero_end_at_the_edge_and_overlap_at_least_as_asked(
        #[case] len: usize,
        #[case] tile: usize,
        #[case] overlap: f32,
        #[case] want: Vec<usize>,
    ) {
        assert_eq!(positions(len, tile, overlap), want);
    }

    proptest! {
        /// Every pixel is covered; neighbours overlap by at least the fraction asked (rounding
        /// aside); the last tile ends at the edge.
        #[test]
        fn the_grid_covers_the_axis(len in 224usize..5000, overlap in 0.0f32..0.9) {
            let p = positions(len, 224, overlap);
            prop_assert_eq!(p[0], 0);
            prop_assert_eq!(*p.last().unwrap() + 224, len);
            let stride = (224.0 * (1.0 - overlap as f64)).floor() as usize;
            for pair in p.windows(2) {
                prop_assert!(pair[1] > pair[0] && pair[1] - pair[0] <= stride.max(1));
            }
        }

        /// Blending is a weighted mean: constant tile maps give that constant everywhere, to
        /// float rounding — no seam, whatever the grid.
        #[test]
        fn a_constant_blends_to_itself(
            w in 16usize..200,
            h in 16usize..200,
            overlap in 0.0f32..0.8,
            c in 0.0f32..1.0,
        ) {
            let tile = 16;
            let grid = TileGrid::new(w, h, tile, overlap);
            let mut blend = Blend::new(grid.clone());
            for corner in grid.corners() {
                blend.add(corner, &Array2::from_elem((tile, tile), c));
            }
            let map = blend.finish();
            prop_assert_eq!(map.dim(), (h, w));
            let worst = map.iter().map(|&v| (v - c).abs()).fold(0.0f32, f32::max);
            prop_assert!(worst <= 1e-5, "off by {}", worst);
        }
    }

    #[test]
    fn the_window_is_symmetric_smooth_and_never_zero() {
        let w = window(224);
        assert!(w.iter().all(|v| (1e-3..=1.0).contains(v)));
        for u in 0..112 {
            assert!((w[u] - w[223 - u]).abs() < 1e-6);
        }
        let steepest = w
            .windows(2)
            .map(|p| (p[1] - p[0]).abs())
            .fold(0.0, f32::max);
        assert!(steepest < 0.02, "{steepest}");
    }

    #[test]
    fn options_outside_their_range_are_refused() {
        assert!(TileOptions::default().check().is_ok());
        for (scale, overlap) in [
            (0.0, 0.25),
            (f32::NAN, 0.25),
            (1.5, 0.25),
            (1.0, 0.95),
            (1.0, -0.1),
        ] {
            assert!(
                TileOptions { scale, overlap }.check().is_err(),
                "{scale} {overlap}"
            );
        }
    }
}
