//! The graph's input batch in either of its two kinds (model-spec/README.md "Graph contract",
//! §1): `image` f32 [B, 3, S, S], normalised by the caller, or `image_u8` uint8 [B, S, S, 3],
//! RGB already resized, normalised inside the graph (`dlvp export --embed-preprocess`).

use dlvp_contract::InputKind;
use ndarray::ArrayD;

/// A batch for [`crate::Detector::run`] and the backends; `From` the f32 or the u8 array.
#[derive(Debug, Clone)]
pub enum GraphInput {
    /// `image` f32 [B, 3, S, S].
    Image(ArrayD<f32>),
    /// `image_u8` uint8 [B, S, S, 3].
    ImageU8(ArrayD<u8>),
}

impl GraphInput {
    pub fn kind(&self) -> InputKind {
        match self {
            GraphInput::Image(_) => InputKind::Image,
            GraphInput::ImageU8(_) => InputKind::ImageU8,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            GraphInput::Image(x) => x.shape(),
            GraphInput::ImageU8(x) => x.shape(),
        }
    }

    /// The number of images (the first dimension).
    pub fn batch(&self) -> usize {
        self.shape().first().copied().unwrap_or(0)
    }

    /// The shape the graph's input of this kind has for `batch` images of side `size`.
    pub fn expected_shape(kind: InputKind, batch: usize, size: usize) -> [usize; 4] {
        match kind {
            InputKind::Image => [batch, 3, size, size],
            InputKind::ImageU8 => [batch, size, size, 3],
        }
    }
}

impl From<ArrayD<f32>> for GraphInput {
    fn from(x: ArrayD<f32>) -> Self {
        GraphInput::Image(x)
    }
}

impl From<ArrayD<u8>> for GraphInput {
    fn from(x: ArrayD<u8>) -> Self {
        GraphInput::ImageU8(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn kinds_and_shapes_follow_the_contract() {
        let f = GraphInput::from(ArrayD::<f32>::zeros(IxDyn(&[2, 3, 8, 8])));
        let u = GraphInput::from(ArrayD::<u8>::zeros(IxDyn(&[2, 8, 8, 3])));
        assert_eq!((f.kind(), f.batch()), (InputKind::Image, 2));
        assert_eq!((u.kind(), u.batch()), (InputKind::ImageU8, 2));
        assert_eq!(GraphInput::expected_shape(f.kind(), 2, 8), f.shape());
        assert_eq!(GraphInput::expected_shape(u.kind(), 2, 8), u.shape());
        // The contract's own description agrees, dimension for dimension.
        for kind in [InputKind::Image, InputKind::ImageU8] {
            let desc = kind.desc(8);
            assert_eq!(
                desc.per_item_dims(),
                GraphInput::expected_shape(kind, 1, 8)[1..].to_vec()
            );
        }
    }
}
