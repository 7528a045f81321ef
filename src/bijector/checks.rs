//! The three checks every bijector must pass:
//! 1. round trip: inverse(forward(x)) ≈ x;
//! 2. log|det J| equals the log-abs-determinant of the Jacobian built by autograd, per sample;
//! 3. in 2-D, the density of a transformed standard normal integrates to 1 on a grid.
//!
//! Run them in float64. They are used by the test suite and by `flowlab check`, so users can
//! verify their own compositions.
use super::{Bijector, FlowResult};
use crate::distribution::{Distribution, StandardNormal};
use crate::grid::Grid2d;
use tch::{Device, Kind, Tensor};

/// Largest |inverse(forward(x)) − x| and |forward(inverse(y)) − y| over the batch, and the
/// largest |ld_forward(x) + ld_inverse(f(x))|.
#[derive(Debug, Clone, Copy)]
pub struct RoundTrip {
    pub max_abs_error: f64,
    pub max_log_det_error: f64,
}

pub fn round_trip(b: &dyn Bijector, x: &Tensor, context: Option<&Tensor>) -> FlowResult<RoundTrip> {
    tch::no_grad(|| {
        let (y, ld_f) = b.forward(x, context)?;
        let (x_back, ld_i) = b.inverse(&y, context)?;
        let (y_again, _) = b.forward(&x_back, context)?;
        let err_x = (&x_back - x).abs().max().double_value(&[]);
        let err_y = (&y_again - &y).abs().max().double_value(&[]);
        let err_ld = (&ld_f + &ld_i).abs().max().double_value(&[]);
        Ok(RoundTrip {
            max_abs_error: err_x.max(err_y),
            max_log_det_error: err_ld,
        })
    })
}

/// The per-sample Jacobian ∂f(x)/∂x by autograd: `[batch, d, d]` for `x: [batch, d]`. Assumes
/// samples do not interact (true of every bijector here outside batch-statistics layers).
pub fn autograd_jacobian(
    b: &dyn Bijector,
    x: &Tensor,
    context: Option<&Tensor>,
) -> FlowResult<(Tensor, Tensor)> {
    let x = x.detach().set_requires_grad(true);
    let (y, ld) = b.forward(&x, context)?;
    let d = x.size()[1];
    let mut rows = Vec::with_capacity(d as usize);
    for j in 0..d {
        let yj = y.select(1, j).sum(y.kind());
        let g = Tensor::run_backward(&[&yj], &[&x], true, false);
        rows.push(g[0].shallow_clone());
    }
    Ok((Tensor::stack(&rows, 1), ld.detach()))
}

/// Largest |ld(x) − ln|det J_autograd(x)|| over the batch.
pub fn log_det_error(b: &dyn Bijector, x: &Tensor, context: Option<&Tensor>) -> FlowResult<f64> {
    let (jac, ld) = autograd_jacobian(b, x, context)?;
    let (_, logabsdet) = jac.slogdet();
    Ok((ld - logabsdet).abs().max().double_value(&[]))
}

/// ∫ q(y) dy on `grid`, where q is a 2-D standard normal pushed through `b`:
/// ln q(y) = ln N(f⁻¹(y)) + ln|det ∂f⁻¹/∂y|.
pub fn density_integral(b: &dyn Bijector, grid: &Grid2d) -> FlowResult<f64> {
    let base = StandardNormal::new(vec![2], Kind::Double, Device::Cpu);
    let mut err = None;
    let log_z = grid.log_integral(Device::Cpu, &mut |pts| match b
        .inverse(pts, None)
        .and_then(|(x, ld)| Ok(base.log_prob(&x)? + ld))
    {
        Ok(lp) => lp,
        Err(e) => {
            err = Some(e);
            Tensor::full(
                [pts.size()[0]],
                f64::NEG_INFINITY,
                (Kind::Double, Device::Cpu),
            )
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(log_z.exp()),
    }
}

/// The three checks on one bijector, with the figures a user reads.
#[derive(Debug, Clone, Copy)]
pub struct CheckReport {
    pub round_trip: RoundTrip,
    pub log_det_error: f64,
    /// ∫ q = 1 ± this, `None` when the bijector is not 2-D.
    pub integral: Option<f64>,
}

impl CheckReport {
    pub fn passes(&self, tol: f64, integral_tol: f64) -> bool {
        self.round_trip.max_abs_error <= tol
            && self.round_trip.max_log_det_error <= tol
            && self.log_det_error <= tol
            && self
                .integral
                .is_none_or(|i| (i - 1.0).abs() <= integral_tol)
    }
}
