//! Sylvester normalizing flows (van den Berg et al. 2018; seed §5.3, eq. 52–54).
//!
//! z′ = z + Q R₁ h(R₂ Qᵀ z + b), with Q ∈ ℝ^{D×M} (orthonormal columns, M ≤ D), R₁, R₂ ∈ ℝ^{M×M}
//! upper triangular, b ∈ ℝ^M and h = tanh. By Sylvester's determinant identity
//! det(I_D + Q R₁ diag(h′) R₂ Qᵀ) = det(I_M + diag(h′) R₂ R₁), whose matrix is triangular, so
//!
//! ```text
//! ln|det ∂z′/∂z| = Σ_i ln|1 + r₁,ᵢᵢ r₂,ᵢᵢ h′((R₂ Qᵀ z + b)_i)|        (eq. 54)
//! ```
//!
//! The map is invertible when r₁,ᵢᵢ r₂,ᵢᵢ > −1/‖h′‖∞ = −1; [`upper_triangular`] produces diagonals
//! through a (slightly shrunk) tanh, so the product lies in (−1, 1). Three ways to get Q (paper §3):
//! - O-SNF: any D×M matrix made orthonormal by [`orthogonalize`] (iterative, paper eq. 15);
//! - H-SNF: a product of Householder reflections, [`householder`] (M = D);
//! - T-SNF: Q = I or the reversal permutation, alternating between steps, [`permutation`].
//!
//! All parameters may carry a leading batch axis (`q: [batch, D, M]`, …) when an encoder
//! produces them per sample (amortized posteriors), or none for a free layer.
//!
//! The inverse has no closed form but is exact up to a tolerance: the part of z orthogonal to Q's
//! columns is unchanged, and a = Qᵀz solves a + R₁ h(R₂ a + b) = Qᵀy, a triangular system solved
//! from the last row up, each row one monotone scalar equation ([`tanh_solve`](super::tanh_solve)).
//!
//! ```
//! use flowlab::bijector::{Bijector, sylvester::{SylvesterFlow, orthogonalize, upper_triangular}};
//! use tch::{Kind, Tensor};
//! let opts = (Kind::Double, tch::Device::Cpu);
//! let q = orthogonalize(&Tensor::randn([3, 2], opts)).unwrap();
//! let full = Tensor::randn([2, 2], opts);
//! let (r1, r2) = upper_triangular(&full, &Tensor::randn([2], opts), &Tensor::randn([2], opts));
//! let f = SylvesterFlow::new(q, r1, r2, Tensor::zeros([2], opts));
//! let z = Tensor::randn([5, 3], opts);
//! let (y, _) = f.forward(&z, None).unwrap();
//! assert!(f.inverse(&y, None).unwrap().0.allclose(&z, 1e-8, 1e-8, false));
//! ```
use super::{expect_dim, Bijector, FlowError, FlowResult};
use tch::{Kind, Tensor};

pub struct SylvesterFlow {
    q: Tensor,
    r1: Tensor,
    r2: Tensor,
    b: Tensor,
}

/// `x: [batch, n]` times `m: [n, k]` or `[batch, n, k]` → `[batch, k]`.
fn vecmat(x: &Tensor, m: &Tensor) -> Tensor {
    x.unsqueeze(-2).matmul(m).squeeze_dim(-2)
}

impl SylvesterFlow {
    /// `q: [(batch,) D, M]` with orthonormal columns, `r1, r2: [(batch,) M, M]` upper triangular
    /// with r₁,ᵢᵢ r₂,ᵢᵢ > −1, `b: [(batch,) M]`.
    pub fn new(q: Tensor, r1: Tensor, r2: Tensor, b: Tensor) -> Self {
        SylvesterFlow { q, r1, r2, b }
    }

    fn dim(&self) -> i64 {
        self.q.size()[self.q.dim() - 2]
    }

    /// The diagonal products r₁,ᵢᵢ r₂,ᵢᵢ, `[(batch,) M]` (each > −1 for invertibility).
    pub fn diagonal_products(&self) -> Tensor {
        self.r1.diagonal(0, -2, -1) * self.r2.diagonal(0, -2, -1)
    }

    /// Σ ln|1 + r₁,ᵢᵢ r₂,ᵢᵢ h′| from h = tanh(pre-activation) (eq. 54).
    fn log_det_from_tanh(&self, h: &Tensor) -> Tensor {
        let h_prime: Tensor = 1.0 - h.square();
        (h_prime * self.diagonal_products() + 1.0)
            .abs()
            .log()
            .sum_dim_intlist(-1, false, h.kind())
    }

    /// Q R₁ h, `[batch, D]`.
    fn shift(&self, h: &Tensor) -> Tensor {
        vecmat(
            &vecmat(h, &self.r1.transpose(-2, -1)),
            &self.q.transpose(-2, -1),
        )
    }
}

impl Bijector for SylvesterFlow {
    fn forward(&self, z: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(z, self.dim(), "sylvester")?;
        let a = vecmat(z, &self.q);
        let h = (vecmat(&a, &self.r2.transpose(-2, -1)) + &self.b).tanh();
        Ok((z + self.shift(&h), self.log_det_from_tanh(&h)))
    }

    fn inverse(&self, y: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(y, self.dim(), "sylvester")?;
        let t = vecmat(y, &self.q);
        let m = t.size()[1];
        // Rows M−1 … 0 of a + R₁ h(R₂ a + b) = t; row i involves a_i and the already solved a_{>i}.
        let mut a_rev: Vec<Tensor> = Vec::new();
        let mut h_rev: Vec<Tensor> = Vec::new();
        for i in (0..m).rev() {
            let later = m - i - 1;
            let entry = |r: &Tensor, j: i64| r.select(-2, i).select(-1, j);
            let mut c = self.b.select(-1, i) + t.select(1, 0).zeros_like();
            let mut target = t.select(1, i);
            if later > 0 {
                let a_later = Tensor::stack(&a_rev.iter().rev().collect::<Vec<_>>(), 1);
                let h_later = Tensor::stack(&h_rev.iter().rev().collect::<Vec<_>>(), 1);
                let row2 = self.r2.select(-2, i).narrow(-1, i + 1, later);
                let row1 = self.r1.select(-2, i).narrow(-1, i + 1, later);
                c += (row2 * a_later).sum_dim_intlist(-1, false, t.kind());
                target -= (row1 * h_later).sum_dim_intlist(-1, false, t.kind());
            }
            let (r, s) = (entry(&self.r1, i), entry(&self.r2, i));
            let a_i = super::tanh_solve::solve(&target, &r, &s, &c, "sylvester")?;
            h_rev.push((s * &a_i + c).tanh());
            a_rev.push(a_i);
        }
        h_rev.reverse();
        let h = Tensor::stack(&h_rev, 1);
        Ok((y - self.shift(&h), -self.log_det_from_tanh(&h)))
    }

    fn name(&self) -> String {
        "sylvester".into()
    }

    fn layers(&self) -> Vec<&dyn Bijector> {
        vec![self]
    }
}

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
/// converges to 1 for σ ∈ (0, √3). `q: [(batch,) D, M]`, M ≤ D, full column rank.
pub fn orthogonalize(q: &Tensor) -> FlowResult<Tensor> {
    let size = q.size();
    let m = size[size.len() - 1];
    let eye = Tensor::eye(m, (q.kind(), q.device()));
    let norm = q
        .square()
        .sum_dim_intlist([-2i64, -1].as_slice(), true, q.kind())
        .sqrt()
        .clamp_min(1e-12);
    let mut q = q / norm;
    let (tight, loose) = if q.kind() == Kind::Double {
        (1e-12, 1e-6)
    } else {
        (2e-6, 1e-4)
    };
    let mut err = f64::INFINITY;
    for _ in 0..100 {
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
    Err(FlowError::NotConverged {
        bijector: "sylvester (orthogonalization of Q)".into(),
        residual: err,
        iterations: 100,
    })
}

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
