//! How an image is tiled (model-spec/README.md, "Tiled inference"): the scale before tiling and
//! the overlap of neighbouring tiles, checked, and written as `dlvp.threshold.tiling` records
//! them. A leaf: the metadata reader and [`crate::tiling`] both use it.

/// How an image is tiled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TileOptions {
    /// The image is scaled by this before tiling, in (0, 1]: 1 takes tiles at native resolution,
    /// 0.5 at half (each tile then covers 2S image pixels).
    pub scale: f32,
    /// Fraction of a tile its neighbours overlap, in [0, 0.9].
    pub overlap: f32,
}

impl Default for TileOptions {
    fn default() -> Self {
        TileOptions {
            scale: 1.0,
            overlap: 0.25,
        }
    }
}

impl TileOptions {
    /// The scale and overlap as one string, as `dlvp.threshold.tiling` records them.
    pub fn describe(&self) -> String {
        format!("scale {}, overlap {}", self.scale, self.overlap)
    }

    /// [`TileOptions::describe`]'s text read back, if it is that and the options pass
    /// [`TileOptions::check`].
    pub fn parse(text: &str) -> Option<TileOptions> {
        let (scale, overlap) = text.strip_prefix("scale ")?.split_once(", overlap ")?;
        let options = TileOptions {
            scale: scale.parse().ok()?,
            overlap: overlap.parse().ok()?,
        };
        options.check().ok().map(|()| options)
    }

    pub fn check(&self) -> Result<(), String> {
        // Tiling exists to keep native detail: beyond 1 it would only enlarge the frame (and its
        // memory) past what the camera resolved.
        if !(self.scale.is_finite() && self.scale > 0.0 && self.scale <= 1.0) {
            return Err(format!(
                "tile scale {} must be above 0 and at most 1 (native resolution)",
                self.scale
            ));
        }
        if !(0.0..=0.9).contains(&self.overlap) {
            return Err(format!(
                "tile overlap {} must be between 0 and 0.9",
                self.overlap
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::default(TileOptions::default())]
    #[case::half(TileOptions { scale: 0.5, overlap: 0.5 })]
    #[case::odd(TileOptions { scale: 0.3333, overlap: 0.0 })]
    fn parse_reads_describe_back(#[case] options: TileOptions) {
        assert_eq!(TileOptions::parse(&options.describe()), Some(options));
    }

    #[rstest]
    #[case::nan_scale("scale NaN, overlap 0.25")]
    #[case::enlarging("scale 2, overlap 0.25")]
    #[case::overlap_too_large("scale 1, overlap 0.95")]
    #[case::words("scale one, overlap 0.25")]
    #[case::other("tiles")]
    fn parse_refuses_what_cannot_tile(#[case] text: &str) {
        assert_eq!(TileOptions::parse(text), None);
    }
}
