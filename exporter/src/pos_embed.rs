//! Positional-embedding resizing at export time (model-spec/README.md §2), exactly as
//! OpenCLIP's `resize_pos_embed`: `F.interpolate(mode='bicubic', align_corners=False,
//! antialias=True)` on the g₀×g₀ grid, class row kept.
//!
//! PyTorch's antialiased bicubic is PIL's separable resampling ([`crate::resample`]) — so even
//! when enlarging the kernel is a = −0.5, not plain bicubic's −0.75.

use ndarray::{Array2, ArrayD, Axis, Ix2};

use crate::resample::{windows, Kernel};

/// The [out, in] matrix of the 1-D antialiased bicubic resampling.
pub fn resample_matrix(input: usize, output: usize) -> Array2<f64> {
    let mut m = Array2::<f64>::zeros((output, input));
    for (i, w) in windows(input, output, Kernel::Bicubic)
        .into_iter()
        .enumerate()
    {
        for (k, v) in w.weights.into_iter().enumerate() {
            m[[i, w.start + k]] = v;
        }
    }
    m
}

/// `[g₀²+1, C]` → `[g²+1, C]`; the class row (row 0) is kept. Any other shape is an error
/// saying what was found.
pub fn resize_positional_embedding(
    pos: &ArrayD<f32>,
    old_grid: usize,
    grid: usize,
) -> Result<ArrayD<f32>, String> {
    let expected = format!(
        "[{}, C] for a {old_grid}×{old_grid} grid",
        old_grid * old_grid + 1
    );
    let pos = match pos.view().into_dimensionality::<Ix2>() {
        Ok(p) if p.nrows() == old_grid * old_grid + 1 => p,
        _ => return Err(format!("shape {:?}, expected {expected}", pos.shape())),
    };
    let c = pos.ncols();
    let r = resample_matrix(old_grid, grid);
    let mut out = Array2::<f32>::zeros((grid * grid + 1, c));
    out.row_mut(0).assign(&pos.row(0));
    let patches = pos.slice(ndarray::s![1.., ..]).mapv(f64::from);
    // Separable: rows (y) then columns (x), as PyTorch's two passes, in f64.
    for ch in 0..c {
        let plane = patches
            .index_axis(Axis(1), ch)
            .to_owned()
            .into_shape_with_order((old_grid, old_grid))
            .map_err(|e| format!("{e}: expected {expected}"))?;
        let resized = r.dot(&plane).dot(&r.t());
        for (k, v) in resized.iter().enumerate() {
            out[[k + 1, ch]] = *v as f32;
        }
    }
    Ok(out.into_dyn())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_shape_is_an_error_saying_what_was_expected() {
        let three_d = ArrayD::<f32>::zeros(ndarray::IxDyn(&[10, 4, 1]));
        let err = resize_positional_embedding(&three_d, 3, 5).unwrap_err();
        assert_eq!(err, "shape [10, 4, 1], expected [10, C] for a 3×3 grid");
        let rows = ArrayD::<f32>::zeros(ndarray::IxDyn(&[9, 4]));
        assert!(resize_positional_embedding(&rows, 3, 5).is_err());
        let ok = ArrayD::<f32>::zeros(ndarray::IxDyn(&[10, 4]));
        assert_eq!(
            resize_positional_embedding(&ok, 3, 5).unwrap().shape(),
            [26, 4]
        );
    }

    #[test]
    fn same_size_is_the_identity_and_rows_sum_to_one() {
        let same = resample_matrix(7, 7);
        assert!((&same - &Array2::<f64>::eye(7))
            .iter()
            .all(|v| v.abs() < 1e-12));
        for (input, output) in [(5, 7), (12, 7), (16, 37), (37, 16)] {
            let m = resample_matrix(input, output);
            for row in m.rows() {
                assert!((row.sum() - 1.0).abs() < 1e-12, "{input}→{output}");
            }
        }
    }

    #[test]
    fn enlarging_uses_the_a_minus_half_kernel() {
        // 2→4: centres 0.25, 0.75, 1.25, 1.75; PIL's a = −0.5 taps, normalised over the clipped window.
        let m = resample_matrix(2, 4);
        let w = |d: f64| Kernel::Bicubic.eval(d);
        let first = [w(0.0 - 0.25 + 0.5), w(1.0 - 0.25 + 0.5)];
        let total: f64 = first.iter().sum();
        assert!(
            (m[[0, 0]] - first[0] / total).abs() < 1e-12
                && (m[[0, 1]] - first[1] / total).abs() < 1e-12
        );
        assert!(
            (Kernel::Bicubic.eval(1.5) - (-0.0625)).abs() < 1e-12,
            "a = −0.5 gives −1/16 at 1.5 (a = −0.75 would give −3/32)"
        );
    }
}
