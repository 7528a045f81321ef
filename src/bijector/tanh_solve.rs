//! The scalar equation behind the inverses of planar and Sylvester flows:
//!
//! ```text
//! a + r · tanh(s · a + c) = t,    with 1 + r · s · tanh'(·) > 0,
//! ```
//!
//! solved elementwise (any shape; r, s, c broadcast against t). The left side is increasing in a
//! and differs from a by at most |r|, so the root lies in [t − |r|, t + |r|]: safeguarded Newton
//! iteration inside that bracket (a bisection step whenever Newton leaves it) converges for every
//! element. The iteration runs without gradients; one Newton step with gradients on, taken at the
//! root, carries the implicit-function derivative da/dθ = −(∂g/∂θ)/g′, so the returned root is
//! differentiable in t, r, s and c.
use super::{FlowError, FlowResult};
use tch::Tensor;

const MAX_ITERATIONS: usize = 100;

/// The root a of a + r tanh(s a + c) = t; `bijector` names the caller in a convergence error.
pub fn solve(t: &Tensor, r: &Tensor, s: &Tensor, c: &Tensor, bijector: &str) -> FlowResult<Tensor> {
    let g = |a: &Tensor| a + r * (s * a + c).tanh() - t;
    let g_prime = |a: &Tensor| -> Tensor {
        let h_prime: Tensor = 1.0 - (s * a + c).tanh().square();
        h_prime * r * s + 1.0
    };
    let tol = if t.kind() == tch::Kind::Double {
        1e-12
    } else {
        1e-5
    };
    let root = tch::no_grad(|| -> FlowResult<Tensor> {
        let target = t.detach();
        let spread = r.detach().abs().expand_as(&target);
        let (mut lo, mut hi) = (&target - &spread, &target + &spread);
        let mut a = target.shallow_clone();
        let scale = target.abs().max().double_value(&[]).max(1.0);
        let mut residual = f64::INFINITY;
        for _ in 0..MAX_ITERATIONS {
            let ga = g(&a).detach();
            residual = ga.abs().max().double_value(&[]);
            if residual <= tol * scale {
                return Ok(a);
            }
            // g is increasing in a: shrink the bracket towards the sign change.
            let pos = ga.gt(0.0);
            hi = a.where_self(&pos, &hi);
            lo = lo.where_self(&pos, &a);
            let newton = &a - &ga / g_prime(&a).detach().clamp_min(1e-30);
            let inside = newton.gt_tensor(&lo).logical_and(&newton.lt_tensor(&hi));
            a = newton.where_self(&inside, &((&lo + &hi) * 0.5));
        }
        Err(FlowError::NotConverged {
            bijector: bijector.into(),
            residual,
            iterations: MAX_ITERATIONS,
        })
    })?;
    Ok(&root - g(&root) / g_prime(&root))
}
