//! What is deployed beside an exported graph, written from the same spec and options as the
//! graph itself: the JSON sidecar C++ consumers read ([`sidecar`], `MODEL.onnx.json`) and a
//! Triton Inference Server model repository's `config.pbtxt` ([`triton`]). The graph's
//! `metadata_props` stay the source of truth; these say the same in other formats. The terms
//! Triton and `dlvp serve` share are [`dlvp_contract::triton`]'s.

pub mod sidecar;
pub mod triton;
