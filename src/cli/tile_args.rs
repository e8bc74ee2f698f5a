//! `--tile [--tile-scale S] [--tile-overlap F]`: the tiled inference flags `detect` and
//! `threshold` share (`dlvp_runtime::tiling`).

use clap::Args;
use dlvp_runtime::tiling::TileOptions;

#[derive(Args, Clone)]
pub struct TileArgs {
    /// Score high-resolution images tile by tile at native resolution (or --tile-scale):
    /// overlapping tiles of the model's input size, batched, their maps blended without seams
    /// into one map at the image's size, the image's score the largest tile's. Small defects
    /// that a resize to the model's size would shrink below a patch stay visible.
    #[arg(long)]
    pub tile: bool,
    /// With --tile: scale the image by this before tiling, in (0, 1] (0.5: each tile covers
    /// twice the model's size in image pixels, a quarter of the tiles).
    #[arg(long, requires = "tile", default_value_t = 1.0, value_name = "S")]
    pub tile_scale: f32,
    /// With --tile: the fraction of a tile its neighbours overlap.
    #[arg(long, requires = "tile", default_value_t = 0.25, value_name = "F")]
    pub tile_overlap: f32,
}

impl TileArgs {
    /// The tiling asked for, checked; `None` without --tile.
    pub fn options(&self) -> anyhow::Result<Option<TileOptions>> {
        if !self.tile {
            return Ok(None);
        }
        let options = TileOptions {
            scale: self.tile_scale,
            overlap: self.tile_overlap,
        };
        options
            .check()
            .map_err(|e| anyhow::anyhow!("--tile-scale/--tile-overlap: {e}"))?;
        Ok(Some(options))
    }
}
