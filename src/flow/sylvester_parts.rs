//! The parts of a Sylvester flow's matrices (van den Berg et al. 2018, §3): the triangular R₁, R₂
//! and the three ways to get Q (orthonormal columns, Householder reflections, a permutation).
use crate::bijector::{FlowError, FlowResult};
use tch::{Kind, Tensor};

/// R₁ = triu₁(full) + diag(c·tanh(d1)) and R₂ = triu₁(fullᵀ) + diag(c·tanh(d2)), triu₁ the strict
/// upper triangle (the paper's code shares one free matrix between R₁ and R₂), with c = 1 − 10⁻⁴.
/// `full: [(b,) M, M]`, `d1, d2: [(b,) M]`. The paper uses tanh alone, so r₁,ᵢᵢ r₂,ᵢᵢ ∈ (−1, 1)
/// in exact arithmetic; but tanh rounds to ±1 in floating point for large inputs, and a product
/// of exactly −1 makes the map singular. The factor c keeps the product ≥ −(1 − 2·10⁻⁴), so
/// ln|det| stays finite for any encoder output.
pub fn upper_triangular(full: &Tensor, d1: &Tensor, d2: &Tensor) -> (Tensor, Tensor) {
    const C: f64 = 1.0 - 1e-4;
    let strict = |m: &Tensor| m.triu(1);
    (
        strict(full) + (d1.tanh() * C).diag_embed(0, -2, -1),
        strict(&full.transpose(-2, -1)) + (d2.tanh() * C).diag_embed(0, -2, -1),
    )
}

/// Iterative orthogonalization (paper eq. 15, Kovarik 1970; Björck & Bowie 1971): scale Q to unit
/// Frobenius norm (so all singular values are ≤ 1), then Q ← Q (I + ½(I − QᵀQ)) until
/// max|QᵀQ − I| is at rounding level. Each step maps a singular value σ to σ(3 − σ²)/2, which
/// converges to 1 for σ ∈ (0, √3). `q: [(batch,) D, M]`, M ≤ D.
///
/// A singular value near 0 (an encoder output of nearly dependent columns) grows only by 3/2 a
/// step, so 100 steps may not reach the tolerance, in float32 above all. Training must not stop
/// there, and the flow's log-det needs QᵀQ = I exactly (det(I + Q R̃ R Qᵀ) = det(I + R̃ R) holds
/// only then): such a batch takes the Q of a Householder QR decomposition instead, orthonormal
/// for any matrix, with a warning the first time it happens in a process.
pub fn orthogonalize(q: &Tensor) -> FlowResult<Tensor> {
    let size = q.size();
    let m = size[size.len() - 1];
    let eye = Tensor::eye(m, (q.kind(), q.device()));
    let norm = q
        .square()
        .sum_dim_intlist([-2i64, -1].as_slice(), true, q.kind())
        .sqrt()
        .clamp_min(1e-12);
    let start = q / norm;
    let mut q = start.shallow_clone();
    let (tight, loose) = if q.kind() == Kind::Double {
        (1e-12, 1e-6)
    } else {
        (2e-6, 1e-4)
    };
    let mut err = f64::INFINITY;
    for _ in 0..ITERATIONS {
        let qtq = q.transpose(-2, -1).matmul(&q);
        err = tch::no_grad(|| (&qtq - &eye).abs().max().double_value(&[]));
        if err <= tight {
            return Ok(q);
        }
        q = q.matmul(&(&eye + (&eye - qtq) * 0.5));
    }
    if err <= loose {
        return Ok(q);
    }
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        eprintln!(
            "warning: sylvester (orthogonalization of Q) left a residual of {err:.1e} after {ITERATIONS} steps; such batches use a QR decomposition instead (said once)"
        );
    }
    let (qr_q, _) = Tensor::linalg_qr(&start, "reduced");
    let residual = tch::no_grad(|| {
        (qr_q.transpose(-2, -1).matmul(&qr_q) - &eye)
            .abs()
            .max()
            .double_value(&[])
    });
    if residual.is_finite() && residual <= loose {
        return Ok(qr_q);
    }
    Err(FlowError::NotConverged {
        bijector: "sylvester (orthogonalization of Q, and its QR fallback)".into(),
        residual,
        iterations: ITERATIONS,
    })
}

/// Steps of the iterative orthogonalization before its QR fallback.
const ITERATIONS: usize = 100;

/// Q = H_1 ⋯ H_n with H_i = I − 2 v_i v_iᵀ/‖v_i‖² (H-SNF): `v: [(batch,) n, D]` → `[(batch,) D, D]`,
/// orthogonal for any non-zero v_i.
pub fn householder(v: &Tensor) -> Tensor {
    let size = v.size();
    let (n, d) = (size[size.len() - 2], size[size.len() - 1]);
    let eye = Tensor::eye(d, (v.kind(), v.device()));
    let mut q = eye.shallow_clone();
    for i in 0..n {
        let vi = v.select(-2, i);
        let unit = &vi
            / vi.square()
                .sum_dim_intlist(-1, true, v.kind())
                .sqrt()
                .clamp_min(1e-12);
        let h = &eye - unit.unsqueeze(-1).matmul(&unit.unsqueeze(-2)) * 2.0;
        q = q.matmul(&h);
    }
    q
}

/// T-SNF's Q: the identity (`reverse = false`) or the permutation reversing the D coordinates.
pub fn permutation(d: i64, reverse: bool, options: (Kind, tch::Device)) -> Tensor {
    let eye = Tensor::eye(d, options);
    if reverse {
        eye.flip([1])
    } else {
        eye
    }
}
