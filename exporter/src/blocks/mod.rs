//! One builder per block of DLVP-CLIP, each in its own file with the section of
//! `model-spec/README.md` it implements. Blocks read weights through a [`crate::Weights`] scope
//! and add nodes through [`crate::graph::Graph`]; none of them knows protobuf.

pub mod head;
pub mod hfd;
pub mod mlop;
pub mod slfs;
pub mod text;
pub mod vit;

use crate::graph::GraphError;
use crate::weights::WeightsError;

/// A block failed: a weight it needs, or a node it built.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Graph(#[from] GraphError),
}
