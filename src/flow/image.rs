//! Bijectors on image batches `[batch, C, H, W]` (RealNVP, Dinh et al. 2016 §3.6; Glow, Kingma &
//! Dhariwal 2018 §3): squeeze, reshape between flat vectors and images, per-pixel application of a
//! vector bijector over channels (Glow's ActNorm and invertible 1×1 convolution), and the
//! checkerboard and channel masks of image couplings.
use crate::bijector::{Bijector, FlowError, FlowResult};
use tch::{Kind, Tensor};

fn shape_error(name: &str, expected: i64, got: &Tensor) -> FlowError {
    FlowError::Shape {
        bijector: name.into(),
        expected,
        got: got.size(),
    }
}

/// RealNVP's squeeze: each 2×2×C block becomes a 1×1×4C pixel, `[B, C, H, W]` → `[B, 4C, H/2, W/2]`
/// (H and W even). A permutation: log|det| = 0.
pub struct Squeeze;

impl Bijector for Squeeze {
    fn forward(&self, x: &Tensor, _c: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        let s = x.size();
        if s.len() != 4 || s[2] % 2 != 0 || s[3] % 2 != 0 {
            return Err(shape_error(
                "squeeze (needs [batch, C, H, W] with even H and W)",
                4,
                x,
            ));
        }
        let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
        let y = x
            .reshape([b, c, h / 2, 2, w / 2, 2])
            .permute([0, 1, 3, 5, 2, 4])
            .reshape([b, c * 4, h / 2, w / 2]);
        Ok((y, Tensor::zeros([b], (x.kind(), x.device()))))
    }

    fn inverse(&self, y: &Tensor, _c: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        let s = y.size();
        if s.len() != 4 || s[1] % 4 != 0 {
            return Err(shape_error("unsqueeze (needs [batch, 4C, H, W])", 4, y));
        }
        let (b, c, h, w) = (s[0], s[1] / 4, s[2], s[3]);
        let x = y
            .reshape([b, c, 2, 2, h, w])
            .permute([0, 1, 4, 2, 5, 3])
            .reshape([b, c, h * 2, w * 2]);
        Ok((x, Tensor::zeros([b], (y.kind(), y.device()))))
    }

    fn name(&self) -> String {
        "squeeze".into()
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

/// Flat `[B, C·H·W]` (forward input) ↔ image `[B, C, H, W]`.
pub struct Reshape {
    pub shape: [i64; 3],
}

impl Bijector for Reshape {
    fn forward(&self, x: &Tensor, _c: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        let [c, h, w] = self.shape;
        crate::bijector::expect_dim(x, c * h * w, "reshape")?;
        let b = x.size()[0];
        Ok((
            x.reshape([b, c, h, w]),
            Tensor::zeros([b], (x.kind(), x.device())),
        ))
    }

    fn inverse(&self, y: &Tensor, _c: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        let b = y.size()[0];
        if y.size()[1..] != self.shape[..] {
            return Err(shape_error(
                &format!("reshape to {:?}", self.shape),
                self.shape[0],
                y,
            ));
        }
        Ok((
            y.reshape([b, -1]),
            Tensor::zeros([b], (y.kind(), y.device())),
        ))
    }

    fn name(&self) -> String {
        "reshape".into()
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

/// Applies a bijector on C-vectors at every pixel of `[B, C, H, W]`; log-dets are summed over
/// pixels (so ActNorm's is H·W·Σ ln|s|, the 1×1 convolution's H·W·ln|det W|, Glow Table 1).
pub struct PerPixel(pub Box<dyn Bijector>);

impl PerPixel {
    fn apply(&self, x: &Tensor, forward: bool) -> FlowResult<(Tensor, Tensor)> {
        let s = x.size();
        if s.len() != 4 {
            return Err(shape_error(&format!("per-pixel {}", self.0.name()), 4, x));
        }
        let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
        let flat = x.permute([0, 2, 3, 1]).reshape([b * h * w, c]);
        let (y, ld) = if forward {
            self.0.forward(&flat, None)?
        } else {
            self.0.inverse(&flat, None)?
        };
        let y = y.reshape([b, h, w, c]).permute([0, 3, 1, 2]).contiguous();
        Ok((
            y,
            ld.reshape([b, h * w]).sum_dim_intlist(1, false, x.kind()),
        ))
    }
}

impl Bijector for PerPixel {
    fn forward(&self, x: &Tensor, _c: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        self.apply(x, true)
    }

    fn inverse(&self, y: &Tensor, _c: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        self.apply(y, false)
    }

    fn name(&self) -> String {
        format!("per_pixel_{}", self.0.name())
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

/// Checkerboard mask `[C, H, W]`: 1 where (h + w + parity) is even (RealNVP Fig. 3, left).
pub fn checkerboard_mask(shape: [i64; 3], parity: i64, device: tch::Device) -> Tensor {
    let [c, h, w] = shape;
    let rows = Tensor::arange(h, (Kind::Int64, device)).unsqueeze(1);
    let cols = Tensor::arange(w, (Kind::Int64, device)).unsqueeze(0);
    ((rows + cols + parity).remainder(2).eq(0))
        .to_kind(Kind::Float)
        .unsqueeze(0)
        .expand([c, h, w], true)
        .contiguous()
}

/// Channel mask `[C, H, W]`: 1 on the first half of the channels (parity 0) or the second
/// (parity 1) (RealNVP Fig. 3, right).
pub fn channel_mask(shape: [i64; 3], parity: i64, device: tch::Device) -> Tensor {
    let [c, h, w] = shape;
    let first: Tensor = Tensor::arange(c, (Kind::Int64, device))
        .lt(c / 2)
        .to_kind(Kind::Float);
    let m = if parity == 0 { first } else { 1.0 - first };
    m.reshape([c, 1, 1]).expand([c, h, w], true).contiguous()
}
