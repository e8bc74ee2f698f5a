//! ONNX opset-17 op helpers with shape inference. Each checks its inputs and computes the
//! output type as the node is added, so a mistake fails where it is made, naming the scope.

use ndarray::ArrayD;

use super::{shape_str, Attr, DType, Dim, Graph, GraphError, LinearUse, Wire};

type Result<T> = std::result::Result<T, GraphError>;

/// The size of a fixed axis; `None` for the batch or an axis the shape does not have.
fn fixed(dim: impl Into<Option<Dim>>) -> Option<usize> {
    match dim.into() {
        Some(Dim::Fixed(n)) => Some(n),
        _ => None,
    }
}

/// Numpy broadcasting of two shapes.
fn broadcast(g: &Graph, op: &str, a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>> {
    let rank = a.len().max(b.len());
    let pad = |s: &[Dim]| -> Vec<Dim> {
        std::iter::repeat_n(Dim::Fixed(1), rank - s.len())
            .chain(s.iter().copied())
            .collect()
    };
    let (a2, b2) = (pad(a), pad(b));
    a2.iter()
        .zip(&b2)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Ok(x),
            (Dim::Fixed(1), other) | (other, Dim::Fixed(1)) => Ok(other),
            _ => Err(g.error(
                op,
                format!(
                    "shapes {} and {} do not broadcast",
                    shape_str(a),
                    shape_str(b)
                ),
            )),
        })
        .collect()
}

fn same_dtype(g: &Graph, op: &str, a: &Wire, b: &Wire) -> Result<()> {
    if a.dtype != b.dtype {
        return Err(g.error(op, format!("dtypes {:?} and {:?} differ", a.dtype, b.dtype)));
    }
    Ok(())
}

impl Graph {
    fn binary(&mut self, op: &'static str, a: &Wire, b: &Wire) -> Result<Wire> {
        same_dtype(self, op, a, b)?;
        let shape = broadcast(self, op, &a.shape, &b.shape)?;
        Ok(self
            .node(op, &[a, b], vec![], vec![(a.dtype, shape)])
            .remove(0))
    }

    pub fn add(&mut self, a: &Wire, b: &Wire) -> Result<Wire> {
        self.binary("Add", a, b)
    }

    pub fn sub(&mut self, a: &Wire, b: &Wire) -> Result<Wire> {
        self.binary("Sub", a, b)
    }

    pub fn mul(&mut self, a: &Wire, b: &Wire) -> Result<Wire> {
        self.binary("Mul", a, b)
    }

    pub fn div(&mut self, a: &Wire, b: &Wire) -> Result<Wire> {
        self.binary("Div", a, b)
    }

    /// MatMul of rank ≥ 2 operands, batch dimensions broadcast.
    pub fn matmul(&mut self, a: &Wire, b: &Wire) -> Result<Wire> {
        same_dtype(self, "MatMul", a, b)?;
        if a.rank() < 2 || b.rank() < 2 {
            return Err(self.error(
                "MatMul",
                format!(
                    "operands {} and {} need rank ≥ 2",
                    shape_str(&a.shape),
                    shape_str(&b.shape)
                ),
            ));
        }
        let dim = |w: &Wire, axis: usize| w.shape[w.rank() - axis];
        let (m, k1) = (dim(a, 2), dim(a, 1));
        let (k2, n) = (dim(b, 2), dim(b, 1));
        if k1 != k2 {
            return Err(self.error(
                "MatMul",
                format!(
                    "inner dimensions differ: {} × {}",
                    shape_str(&a.shape),
                    shape_str(&b.shape)
                ),
            ));
        }
        let mut shape = broadcast(
            self,
            "MatMul",
            &a.shape[..a.rank() - 2],
            &b.shape[..b.rank() - 2],
        )?;
        shape.extend([m, n]);
        Ok(self
            .node("MatMul", &[a, b], vec![], vec![(a.dtype, shape)])
            .remove(0))
    }

    /// `x · Wᵀ + b` for a PyTorch Linear weight [out, in]; the weight is stored pre-transposed.
    pub fn linear(
        &mut self,
        x: &Wire,
        weight: &ArrayD<f32>,
        bias: Option<&ArrayD<f32>>,
    ) -> Result<Wire> {
        if weight.ndim() != 2 {
            return Err(self.error(
                "Linear",
                format!("weight has shape {:?}, expected [out, in]", weight.shape()),
            ));
        }
        let (out, inp) = (weight.shape()[0], weight.shape()[1]);
        if x.dim(-1) != Some(Dim::Fixed(inp)) {
            return Err(self.error(
                "Linear",
                format!(
                    "input {} does not end in the weight's in = {inp}",
                    shape_str(&x.shape)
                ),
            ));
        }
        let transposed: Vec<f32> = weight.t().iter().copied().collect();
        let w = self.constant_f32("weight", &[inp, out], &transposed);
        let y = self.matmul(x, &w)?;
        self.linears.push(LinearUse {
            matmul: y.name.clone(),
            activation: x.clone(),
            weight: w.name.clone(),
            scope: self.scope_path(),
        });
        match bias {
            None => Ok(y),
            Some(b) => {
                if b.shape() != [out] {
                    return Err(self.error(
                        "Linear",
                        format!("bias has shape {:?}, expected [{out}]", b.shape()),
                    ));
                }
                let b: Vec<f32> = b.iter().copied().collect();
                let b = self.constant_f32("bias", &[out], &b);
                self.add(&y, &b)
            }
        }
    }

    pub fn transpose(&mut self, x: &Wire, perm: &[usize]) -> Result<Wire> {
        let mut seen = perm.to_vec();
        seen.sort_unstable();
        if seen != (0..x.rank()).collect::<Vec<_>>() {
            return Err(self.error(
                "Transpose",
                format!("perm {perm:?} is not a permutation of {} axes", x.rank()),
            ));
        }
        let shape = perm.iter().map(|&p| x.shape[p]).collect();
        let perm = perm.iter().map(|&p| p as i64).collect();
        Ok(self
            .node(
                "Transpose",
                &[x],
                vec![("perm", Attr::Ints(perm))],
                vec![(x.dtype, shape)],
            )
            .remove(0))
    }

    /// Reshape to `target`; a `Batch` in the target must sit where the input has it (written as
    /// ONNX's 0 = "copy this dimension"), every other dimension is fixed.
    pub fn reshape(&mut self, x: &Wire, target: &[Dim]) -> Result<Wire> {
        let count = |s: &[Dim]| s.iter().filter_map(|&d| fixed(d)).product::<usize>();
        let batches = |s: &[Dim]| s.iter().filter(|&&d| d == Dim::Batch).count();
        if count(&x.shape) != count(target) || batches(&x.shape) != batches(target) {
            return Err(self.error(
                "Reshape",
                format!(
                    "cannot reshape {} to {}",
                    shape_str(&x.shape),
                    shape_str(target)
                ),
            ));
        }
        let mut spec = Vec::with_capacity(target.len());
        for (i, &d) in target.iter().enumerate() {
            spec.push(match d {
                Dim::Fixed(n) => n as i64,
                Dim::Batch if x.shape.get(i) == Some(&Dim::Batch) => 0,
                Dim::Batch => {
                    return Err(self.error(
                        "Reshape",
                        format!(
                            "the batch moves from its axis: {} → {}",
                            shape_str(&x.shape),
                            shape_str(target)
                        ),
                    ))
                }
            });
        }
        let shape = self.constant_i64("shape", &[spec.len()], &spec);
        Ok(self
            .node(
                "Reshape",
                &[x, &shape],
                vec![],
                vec![(x.dtype, target.to_vec())],
            )
            .remove(0))
    }

    /// Zero padding of the end of each spatial axis of [N, C, H, W] by (bottom, right).
    pub fn pad_end_2d(&mut self, x: &Wire, bottom: usize, right: usize) -> Result<Wire> {
        if x.rank() != 4 {
            return Err(self.error(
                "Pad",
                format!("expected [N, C, H, W], found {}", shape_str(&x.shape)),
            ));
        }
        if bottom == 0 && right == 0 {
            return Ok(x.clone());
        }
        let (Some(h), Some(w)) = (fixed(x.dim(2)), fixed(x.dim(3))) else {
            return Err(self.error(
                "Pad",
                format!("spatial axes of {} must be fixed", shape_str(&x.shape)),
            ));
        };
        let pads = self.constant_i64(
            "pads",
            &[8],
            &[0, 0, 0, 0, 0, 0, bottom as i64, right as i64],
        );
        let shape = vec![
            x.shape[0],
            x.shape[1],
            Dim::Fixed(h + bottom),
            Dim::Fixed(w + right),
        ];
        Ok(self
            .node(
                "Pad",
                &[x, &pads],
                vec![("mode", Attr::Str("constant".into()))],
                vec![(x.dtype, shape)],
            )
            .remove(0))
    }

    /// Elements `start..end` of fixed axis `axis`.
    pub fn slice(&mut self, x: &Wire, axis: usize, start: usize, end: usize) -> Result<Wire> {
        let Some(&dim) = x.shape.get(axis) else {
            return Err(self.error(
                "Slice",
                format!("axis {axis} outside a rank-{} tensor", x.rank()),
            ));
        };
        let len = fixed(dim).ok_or_else(|| self.error("Slice", "cannot slice the batch axis"))?;
        if start >= end || end > len {
            return Err(self.error(
                "Slice",
                format!(
                    "range {start}..{end} outside axis {axis} of {}",
                    shape_str(&x.shape)
                ),
            ));
        }
        let starts = self.constant_i64("starts", &[1], &[start as i64]);
        let ends = self.constant_i64("ends", &[1], &[end as i64]);
        let axes = self.constant_i64("axes", &[1], &[axis as i64]);
        let mut shape = x.shape.clone();
        shape[axis] = Dim::Fixed(end - start);
        Ok(self
            .node(
                "Slice",
                &[x, &starts, &ends, &axes],
                vec![],
                vec![(x.dtype, shape)],
            )
            .remove(0))
    }

    fn conv_like(
        &mut self,
        op: &'static str,
        x: &Wire,
        weight: &Wire,
        stride: usize,
        group: usize,
    ) -> Result<Wire> {
        if x.rank() != 4 || weight.rank() != 4 {
            return Err(self.error(
                op,
                format!(
                    "expected 4-D input and weight, found {} and {}",
                    shape_str(&x.shape),
                    shape_str(&weight.shape)
                ),
            ));
        }
        if stride == 0 || group == 0 {
            return Err(self.error(
                op,
                format!("stride {stride} and group {group} must be at least 1"),
            ));
        }
        let dims: Vec<usize> = weight
            .shape
            .iter()
            .map(|&d| fixed(d).unwrap_or(0))
            .collect();
        let (Some(h), Some(w)) = (fixed(x.dim(2)), fixed(x.dim(3))) else {
            return Err(self.error(
                op,
                format!("spatial axes of {} must be fixed", shape_str(&x.shape)),
            ));
        };
        if h == 0 || w == 0 || dims.contains(&0) {
            return Err(self.error(
                op,
                format!(
                    "empty input {} or weight {}",
                    shape_str(&x.shape),
                    shape_str(&weight.shape)
                ),
            ));
        }
        let c_in =
            fixed(x.dim(1)).ok_or_else(|| self.error(op, "the channel axis must be fixed"))?;
        let (c_out, kh, kw) = match op {
            "Conv" => {
                if dims[1] * group != c_in {
                    return Err(self.error(
                        op,
                        format!(
                            "weight {:?} with group {group} does not take {c_in} channels",
                            dims
                        ),
                    ));
                }
                (dims[0], dims[2], dims[3])
            }
            _ => {
                if dims[0] != c_in {
                    return Err(self.error(
                        op,
                        format!("weight {:?} does not take {c_in} channels", dims),
                    ));
                }
                (dims[1] * group, dims[2], dims[3])
            }
        };
        let (oh, ow) = if op == "Conv" {
            if h < kh || w < kw {
                return Err(self.error(
                    op,
                    format!("kernel {kh}×{kw} larger than the {h}×{w} input"),
                ));
            }
            ((h - kh) / stride + 1, (w - kw) / stride + 1)
        } else {
            ((h - 1) * stride + kh, (w - 1) * stride + kw)
        };
        let attrs = vec![
            ("group", Attr::Int(group as i64)),
            ("kernel_shape", Attr::Ints(vec![kh as i64, kw as i64])),
            ("strides", Attr::Ints(vec![stride as i64, stride as i64])),
        ];
        let shape = vec![
            x.shape[0],
            Dim::Fixed(c_out),
            Dim::Fixed(oh),
            Dim::Fixed(ow),
        ];
        Ok(self
            .node(op, &[x, weight], attrs, vec![(x.dtype, shape)])
            .remove(0))
    }

    /// 2-D convolution without bias or padding.
    pub fn conv(&mut self, x: &Wire, weight: &Wire, stride: usize, group: usize) -> Result<Wire> {
        self.conv_like("Conv", x, weight, stride, group)
    }

    /// 2-D transposed convolution without bias, padding or output padding.
    pub fn conv_transpose(
        &mut self,
        x: &Wire,
        weight: &Wire,
        stride: usize,
        group: usize,
    ) -> Result<Wire> {
        self.conv_like("ConvTranspose", x, weight, stride, group)
    }
}

impl Graph {
    /// Concatenation along `axis`; every other axis must agree.
    pub fn concat(&mut self, parts: &[&Wire], axis: usize) -> Result<Wire> {
        let first = parts
            .first()
            .ok_or_else(|| self.error("Concat", "nothing to concatenate"))?;
        if axis >= first.rank() {
            return Err(self.error(
                "Concat",
                format!("axis {axis} outside a rank-{} tensor", first.rank()),
            ));
        }
        let mut total = 0;
        for p in parts {
            same_dtype(self, "Concat", first, p)?;
            let agree = p.rank() == first.rank()
                && (0..p.rank()).all(|i| i == axis || p.shape[i] == first.shape[i]);
            if !agree {
                return Err(self.error(
                    "Concat",
                    format!(
                        "{} and {} differ off axis {axis}",
                        shape_str(&first.shape),
                        shape_str(&p.shape)
                    ),
                ));
            }
            total += fixed(p.shape[axis])
                .ok_or_else(|| self.error("Concat", "cannot concatenate along the batch axis"))?;
        }
        let mut shape = first.shape.clone();
        shape[axis] = Dim::Fixed(total);
        Ok(self
            .node(
                "Concat",
                parts,
                vec![("axis", Attr::Int(axis as i64))],
                vec![(first.dtype, shape)],
            )
            .remove(0))
    }
}

impl Graph {
    fn unary(&mut self, op: &'static str, x: &Wire) -> Result<Wire> {
        Ok(self
            .node(op, &[x], vec![], vec![(x.dtype, x.shape.clone())])
            .remove(0))
    }

    pub fn erf(&mut self, x: &Wire) -> Result<Wire> {
        self.unary("Erf", x)
    }

    pub fn sigmoid(&mut self, x: &Wire) -> Result<Wire> {
        self.unary("Sigmoid", x)
    }

    /// `x · s` for a scalar constant.
    pub fn scale(&mut self, x: &Wire, s: f32) -> Result<Wire> {
        let c = self.constant_f32("scale", &[], &[s]);
        self.mul(x, &c)
    }

    /// `x + s` for a scalar constant.
    pub fn offset(&mut self, x: &Wire, s: f32) -> Result<Wire> {
        let c = self.constant_f32("offset", &[], &[s]);
        self.add(x, &c)
    }

    fn axis(&self, op: &str, x: &Wire, axis: isize) -> Result<usize> {
        let rank = x.rank() as isize;
        let a = if axis < 0 { rank + axis } else { axis };
        if a < 0 || a >= rank {
            return Err(self.error(op, format!("axis {axis} outside a rank-{rank} tensor")));
        }
        Ok(a as usize)
    }

    pub fn softmax(&mut self, x: &Wire, axis: isize) -> Result<Wire> {
        let a = self.axis("Softmax", x, axis)?;
        Ok(self
            .node(
                "Softmax",
                &[x],
                vec![("axis", Attr::Int(a as i64))],
                vec![(x.dtype, x.shape.clone())],
            )
            .remove(0))
    }

    /// LayerNormalization over the last axis (ε = 1e-5, OpenCLIP's) with scale and bias [C].
    pub fn layer_norm(
        &mut self,
        x: &Wire,
        weight: &ArrayD<f32>,
        bias: &ArrayD<f32>,
    ) -> Result<Wire> {
        let c = fixed(x.dim(-1))
            .ok_or_else(|| self.error("LayerNormalization", "the last axis must be fixed"))?;
        if weight.shape() != [c] || bias.shape() != [c] {
            return Err(self.error(
                "LayerNormalization",
                format!(
                    "scale {:?} / bias {:?} do not match width {c}",
                    weight.shape(),
                    bias.shape()
                ),
            ));
        }
        let (weight, bias): (Vec<f32>, Vec<f32>) = (
            weight.iter().copied().collect(),
            bias.iter().copied().collect(),
        );
        let w = self.constant_f32("ln_weight", &[c], &weight);
        let b = self.constant_f32("ln_bias", &[c], &bias);
        let attrs = vec![("axis", Attr::Int(-1)), ("epsilon", Attr::Float(1e-5))];
        Ok(self
            .node(
                "LayerNormalization",
                &[x, &w, &b],
                attrs,
                vec![(x.dtype, x.shape.clone())],
            )
            .remove(0))
    }

    fn reduce(
        &mut self,
        op: &'static str,
        x: &Wire,
        axes: &[isize],
        keepdims: bool,
    ) -> Result<Wire> {
        let axes: Vec<usize> = axes
            .iter()
            .map(|&a| self.axis(op, x, a))
            .collect::<Result<_>>()?;
        let mut shape = Vec::new();
        for (i, &d) in x.shape.iter().enumerate() {
            if !axes.contains(&i) {
                shape.push(d);
            } else if keepdims {
                shape.push(Dim::Fixed(1));
            }
        }
        let attrs = vec![
            ("axes", Attr::Ints(axes.iter().map(|&a| a as i64).collect())),
            ("keepdims", Attr::Int(keepdims as i64)),
        ];
        Ok(self.node(op, &[x], attrs, vec![(x.dtype, shape)]).remove(0))
    }

    pub fn reduce_mean(&mut self, x: &Wire, axes: &[isize], keepdims: bool) -> Result<Wire> {
        self.reduce("ReduceMean", x, axes, keepdims)
    }

    pub fn reduce_max(&mut self, x: &Wire, axes: &[isize], keepdims: bool) -> Result<Wire> {
        self.reduce("ReduceMax", x, axes, keepdims)
    }

    /// `x / ‖x‖₂` along the last axis.
    pub fn l2_normalize(&mut self, x: &Wire) -> Result<Wire> {
        let norm = self.reduce("ReduceL2", x, &[-1], true)?;
        self.div(x, &norm)
    }

    /// TopK along the last axis, largest first; K is an initializer. Returns (values, int64 indices).
    pub fn topk(&mut self, x: &Wire, k: usize) -> Result<(Wire, Wire)> {
        let n =
            fixed(x.dim(-1)).ok_or_else(|| self.error("TopK", "the last axis must be fixed"))?;
        if k == 0 || k > n {
            return Err(self.error("TopK", format!("K = {k} outside 1..={n}")));
        }
        let kc = self.constant_i64("k", &[1], &[k as i64]);
        let mut shape = x.shape.clone();
        shape[x.rank() - 1] = Dim::Fixed(k); // rank ≥ 1: the last axis is fixed
        let attrs = vec![
            ("axis", Attr::Int(-1)),
            ("largest", Attr::Int(1)),
            ("sorted", Attr::Int(1)),
        ];
        let mut outs = self.node(
            "TopK",
            &[x, &kc],
            attrs,
            vec![(x.dtype, shape.clone()), (DType::I64, shape)],
        );
        let values = outs.remove(0);
        Ok((values, outs.remove(0)))
    }

    pub fn equal(&mut self, a: &Wire, b: &Wire) -> Result<Wire> {
        same_dtype(self, "Equal", a, b)?;
        let shape = broadcast(self, "Equal", &a.shape, &b.shape)?;
        // Bool has no DType of its own: it is only ever cast straight back.
        Ok(self
            .node("Equal", &[a, b], vec![], vec![(DType::U8, shape)])
            .remove(0))
    }

    pub fn cast(&mut self, x: &Wire, to: DType) -> Result<Wire> {
        let code = match to {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I8 => 3,
            DType::I64 => 7,
            DType::F16 => 10,
        };
        Ok(self
            .node(
                "Cast",
                &[x],
                vec![("to", Attr::Int(code))],
                vec![(to, x.shape.clone())],
            )
            .remove(0))
    }

    pub fn unsqueeze(&mut self, x: &Wire, axis: usize) -> Result<Wire> {
        if axis > x.rank() {
            return Err(self.error(
                "Unsqueeze",
                format!(
                    "axis {axis} outside 0..={} of a rank-{} tensor",
                    x.rank(),
                    x.rank()
                ),
            ));
        }
        let axes = self.constant_i64("axes", &[1], &[axis as i64]);
        let mut shape = x.shape.clone();
        shape.insert(axis, Dim::Fixed(1));
        Ok(self
            .node("Unsqueeze", &[x, &axes], vec![], vec![(x.dtype, shape)])
            .remove(0))
    }

    /// Pad with `begins`/`ends` per axis; `mode` is `constant` (zeros) or `reflect`.
    pub fn pad(&mut self, x: &Wire, begins: &[usize], ends: &[usize], mode: &str) -> Result<Wire> {
        if begins.len() != x.rank() || ends.len() != x.rank() {
            return Err(self.error(
                "Pad",
                format!(
                    "pads for {} axes on a rank-{} tensor",
                    begins.len(),
                    x.rank()
                ),
            ));
        }
        let mut shape = x.shape.clone();
        for (i, d) in shape.iter_mut().enumerate() {
            if begins[i] + ends[i] > 0 {
                let n = fixed(*d).ok_or_else(|| self.error("Pad", "cannot pad the batch axis"))?;
                if mode == "reflect" && (begins[i] >= n || ends[i] >= n) {
                    return Err(self.error(
                        "Pad",
                        format!(
                            "reflect padding of {} needs more than {n} elements",
                            begins[i].max(ends[i])
                        ),
                    ));
                }
                *d = Dim::Fixed(n + begins[i] + ends[i]);
            }
        }
        let pads: Vec<i64> = begins.iter().chain(ends).map(|&p| p as i64).collect();
        let pads = self.constant_i64("pads", &[pads.len()], &pads);
        Ok(self
            .node(
                "Pad",
                &[x, &pads],
                vec![("mode", Attr::Str(mode.into()))],
                vec![(x.dtype, shape)],
            )
            .remove(0))
    }

    /// Bilinear upsampling of [B, C, h, w] by integer factors, PyTorch's `align_corners=False`.
    pub fn resize_bilinear(&mut self, x: &Wire, out_h: usize, out_w: usize) -> Result<Wire> {
        let (h, w) = (fixed(x.dim(2)).unwrap_or(0), fixed(x.dim(3)).unwrap_or(0));
        if x.rank() != 4 || h == 0 || w == 0 || !out_h.is_multiple_of(h) || !out_w.is_multiple_of(w)
        {
            return Err(self.error(
                "Resize",
                format!(
                    "{} to {out_h}×{out_w} is not an integer upsampling",
                    shape_str(&x.shape)
                ),
            ));
        }
        let roi = self.constant_f32("roi", &[0], &[]);
        let scales = self.constant_f32(
            "scales",
            &[4],
            &[1.0, 1.0, (out_h / h) as f32, (out_w / w) as f32],
        );
        let attrs = vec![
            (
                "coordinate_transformation_mode",
                Attr::Str("half_pixel".into()),
            ),
            ("mode", Attr::Str("linear".into())),
        ];
        let shape = vec![x.shape[0], x.shape[1], Dim::Fixed(out_h), Dim::Fixed(out_w)];
        Ok(self
            .node("Resize", &[x, &roi, &scales], attrs, vec![(x.dtype, shape)])
            .remove(0))
    }

    /// A constant from an f32 array.
    pub fn constant_array(&mut self, base: &str, a: &ArrayD<f32>) -> Wire {
        let values: Vec<f32> = a.iter().copied().collect();
        self.constant_f32(base, a.shape(), &values)
    }
}
