//! HFD — high/low frequency decomposition of one feature layer (model-spec/README.md §5).
//!
//! In: `F_i` [B, N, C]. Out: `F^o_i = F_i + F^D` [B, N, C]. Weights (scope `dlvp.hfd.{i}`):
//! `in_proj`, `low`, `high` `.{weight [C, C], bias [C]}`.
//!
//! `F̃ = F_i·W_vᵀ + b_v` as [B, C, g, g], zero-padded bottom/right to an even side; the Haar DWT
//! is a depthwise stride-2 Conv with four fixed 2×2 kernels per channel (output channel 4c + band,
//! bands LL, LH, HL, HH); `low` maps LL and `high` maps each high band, as MatMuls over channels;
//! the IDWT is the depthwise stride-2 ConvTranspose with the same kernels (the DWT is
//! orthonormal, so its inverse is its transpose); crop to g×g.

use crate::graph::{DType, Dim, Graph, Wire};
use crate::weights::Weights;

use super::BlockError;

/// The four Haar kernels over a 2×2 window `a b / c d`, in band order LL, LH, HL, HH.
pub const HAAR_KERNELS: [[f32; 4]; 4] = [
    [0.5, 0.5, 0.5, 0.5],
    [0.5, 0.5, -0.5, -0.5],
    [0.5, -0.5, 0.5, -0.5],
    [0.5, -0.5, -0.5, 0.5],
];

/// The depthwise kernel tensor [4C, 1, 2, 2] shared by the DWT Conv and the IDWT ConvTranspose.
fn haar_weight(g: &mut Graph, channels: usize) -> Wire {
    let values: Vec<f32> = (0..channels)
        .flat_map(|_| HAAR_KERNELS.iter().flatten().copied())
        .collect();
    g.constant_f32("haar", &[4 * channels, 1, 2, 2], &values)
}

/// Builds HFD for a `grid`×`grid` patch grid.
pub fn build(g: &mut Graph, w: &Weights, f: &Wire, grid: usize) -> Result<Wire, BlockError> {
    let c = match f.dim(-1) {
        Some(Dim::Fixed(c)) => c,
        _ => return Err(g.error("HFD", "the channel axis must be fixed").into()),
    };
    let n = grid * grid;
    let even = grid + grid % 2;
    let half = even / 2;
    let (b, fc, fn_) = (Dim::Batch, Dim::Fixed(c), Dim::Fixed(n));
    let in_proj = w.pp("in_proj");
    let x = g.linear(
        f,
        &in_proj.get("weight", &[c, c])?,
        Some(&in_proj.get("bias", &[c])?),
    )?;
    let x = g.transpose(&x, &[0, 2, 1])?;
    let x = g.reshape(&x, &[b, fc, Dim::Fixed(grid), Dim::Fixed(grid)])?;
    let x = g.pad_end_2d(&x, grid % 2, grid % 2)?;

    let haar = haar_weight(g, c);
    let bands = g.conv(&x, &haar, 2, c)?; // [B, 4C, h, h], channel 4c + band
    let bands = g.reshape(
        &bands,
        &[b, fc, Dim::Fixed(4), Dim::Fixed(half), Dim::Fixed(half)],
    )?;
    let bands = g.transpose(&bands, &[0, 2, 3, 4, 1])?; // [B, 4, h, h, C]: channels last for the maps
    let low_in = g.slice(&bands, 1, 0, 1)?;
    let high_in = g.slice(&bands, 1, 1, 4)?;
    let low = w.pp("low");
    let high = w.pp("high");
    let low_out = g.linear(
        &low_in,
        &low.get("weight", &[c, c])?,
        Some(&low.get("bias", &[c])?),
    )?;
    let high_out = g.linear(
        &high_in,
        &high.get("weight", &[c, c])?,
        Some(&high.get("bias", &[c])?),
    )?;
    let mapped = g.concat(&[&low_out, &high_out], 1)?;
    let mapped = g.transpose(&mapped, &[0, 4, 1, 2, 3])?; // [B, C, 4, h, h]
    let mapped = g.reshape(
        &mapped,
        &[b, Dim::Fixed(4 * c), Dim::Fixed(half), Dim::Fixed(half)],
    )?;
    let y = g.conv_transpose(&mapped, &haar, 2, c)?; // [B, C, even, even]
    let y = if even != grid {
        let y = g.slice(&y, 2, 0, grid)?;
        g.slice(&y, 3, 0, grid)?
    } else {
        y
    };
    let y = g.reshape(&y, &[b, fc, fn_])?;
    let fd = g.transpose(&y, &[0, 2, 1])?;
    debug_assert_eq!(fd.dtype, DType::F32);
    Ok(g.add(f, &fd)?)
}
