//! Sylvester normalizing flows (van den Berg et al. 2018, §2–3).
//!
//! z′ = z + Q R₁ h(R₂ Qᵀ z + b), with Q ∈ ℝ^{D×M} (orthonormal columns, M ≤ D), R₁, R₂ ∈ ℝ^{M×M}
//! upper triangular, b ∈ ℝ^M and h = tanh. By Sylvester's determinant identity
//! det(I_D + Q R₁ diag(h′) R₂ Qᵀ) = det(I_M + diag(h′) R₂ R₁), whose matrix is triangular, so
//!
//! ```text
//! ln|det ∂z′/∂z| = Σ_i ln|1 + r₁,ᵢᵢ r₂,ᵢᵢ h′((R₂ Qᵀ z + b)_i)|        (§2)
//! ```
//!
//! The map is invertible when r₁,ᵢᵢ r₂,ᵢᵢ > −1/‖h′‖∞ = −1; [`upper_triangular`] produces diagonals
//! through a (slightly shrunk) tanh, so the product lies in (−1, 1). Three ways to get Q (paper §3):
//! - O-SNF: any D×M matrix made orthonormal by [`orthogonalize`] (iterative, paper eq. 15);
//! - H-SNF: a product of Householder reflections, applied to vectors one reflection at a time
//!   ([`householder`] forms the matrix, for checks);
//! - T-SNF: Q = I or the reversal permutation, alternating between steps, [`permutation`].
//!
//! All parameters may carry a leading batch axis (`q: [batch, D, M]`, …) when an encoder
//! produces them per sample (amortized posteriors), or none for a free layer.
//!
//! The inverse has no closed form but is exact up to a tolerance: the part of z orthogonal to Q's
//! columns is unchanged, and a = Qᵀz solves a + R₁ h(R₂ a + b) = Qᵀy, a triangular system solved
//! from the last row up, each row one monotone scalar equation ([`tanh_solve`](crate::bijector::tanh_solve)).
//!
//! ```
//! use flowlab::{bijector::Bijector, flow::sylvester::{SylvesterFlow, orthogonalize, upper_triangular}};
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
use super::params::{uniform, LayerParams, Piece};
pub use super::sylvester_parts::{householder, orthogonalize, permutation, upper_triangular};
use super::{check_length, numbered, FlowLayer, LayerInput, LayerSpec, Site};
use crate::bijector::{expect_dim, Bijector, FlowResult};
use serde::{Deserialize, Serialize};
use tch::Tensor;

pub struct SylvesterFlow {
    q: Orthogonal,
    r1: Tensor,
    r2: Tensor,
    b: Tensor,
}

/// How Q is held: as a matrix `[(batch,) D, M]`, or (H-SNF) as the unit vectors of its
/// reflections `[(batch,) n, D]`, Q = H_1 ⋯ H_n, applied to vectors one reflection at a time
/// (O(nD) per sample) instead of forming the D×D matrix (O(nD²) per sample, as the paper's code
/// does for amortized Q).
enum Orthogonal {
    Matrix(Tensor),
    Reflections(Tensor),
}

/// x ↦ H_i x = x − 2 u_i (u_iᵀ x) for i in `order`: `x: [batch, D]`, `u: [(batch,) n, D]` unit rows.
fn reflect(x: &Tensor, u: &Tensor, order: impl Iterator<Item = i64>) -> Tensor {
    let mut x = x.shallow_clone();
    for i in order {
        let ui = u.select(-2, i);
        let dot = (&x * &ui).sum_dim_intlist(-1, true, x.kind());
        // Not `-=`: on a tensor that is an in-place update of the caller's input.
        x = &x - dot * ui * 2.0;
    }
    x
}

/// `x: [batch, n]` times `m: [n, k]` or `[batch, n, k]` → `[batch, k]`.
fn vecmat(x: &Tensor, m: &Tensor) -> Tensor {
    x.unsqueeze(-2).matmul(m).squeeze_dim(-2)
}

impl SylvesterFlow {
    /// `q: [(batch,) D, M]` with orthonormal columns, `r1, r2: [(batch,) M, M]` upper triangular
    /// with r₁,ᵢᵢ r₂,ᵢᵢ > −1, `b: [(batch,) M]`.
    pub fn new(q: Tensor, r1: Tensor, r2: Tensor, b: Tensor) -> Self {
        SylvesterFlow {
            q: Orthogonal::Matrix(q),
            r1,
            r2,
            b,
        }
    }

    /// H-SNF with Q = H_1 ⋯ H_n given by its reflection vectors `v: [(batch,) n, D]` (any
    /// non-zero length): the same map as `new(householder(v), …)`, without forming Q.
    pub fn with_reflections(v: &Tensor, r1: Tensor, r2: Tensor, b: Tensor) -> Self {
        let unit = v / v
            .square()
            .sum_dim_intlist(-1, true, v.kind())
            .sqrt()
            .clamp_min(1e-12);
        SylvesterFlow {
            q: Orthogonal::Reflections(unit),
            r1,
            r2,
            b,
        }
    }

    fn dim(&self) -> i64 {
        match &self.q {
            Orthogonal::Matrix(q) => q.size()[q.dim() - 2],
            Orthogonal::Reflections(u) => u.size()[u.dim() - 1],
        }
    }

    /// Qᵀz, `[batch, M]` (reflections: H_n ⋯ H_1 z).
    fn q_transpose_times(&self, z: &Tensor) -> Tensor {
        match &self.q {
            Orthogonal::Matrix(q) => vecmat(z, q),
            Orthogonal::Reflections(u) => reflect(z, u, 0..u.size()[u.dim() - 2]),
        }
    }

    /// Qx, `[batch, D]` (reflections: H_1 ⋯ H_n x).
    fn q_times(&self, x: &Tensor) -> Tensor {
        match &self.q {
            Orthogonal::Matrix(q) => vecmat(x, &q.transpose(-2, -1)),
            Orthogonal::Reflections(u) => reflect(x, u, (0..u.size()[u.dim() - 2]).rev()),
        }
    }

    /// The diagonal products r₁,ᵢᵢ r₂,ᵢᵢ, `[(batch,) M]` (each > −1 for invertibility).
    pub fn diagonal_products(&self) -> Tensor {
        self.r1.diagonal(0, -2, -1) * self.r2.diagonal(0, -2, -1)
    }

    /// Σ ln|1 + r₁,ᵢᵢ r₂,ᵢᵢ h′| from h = tanh(pre-activation) (§2).
    fn log_det_from_tanh(&self, h: &Tensor) -> Tensor {
        let h_prime: Tensor = 1.0 - h.square();
        (h_prime * self.diagonal_products() + 1.0)
            .abs()
            .log()
            .sum_dim_intlist(-1, false, h.kind())
    }

    /// Q R₁ h, `[batch, D]`.
    fn shift(&self, h: &Tensor) -> Tensor {
        self.q_times(&vecmat(h, &self.r1.transpose(-2, -1)))
    }
}

impl Bijector for SylvesterFlow {
    fn forward(&self, z: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(z, self.dim(), "sylvester")?;
        let a = self.q_transpose_times(z);
        let h = (vecmat(&a, &self.r2.transpose(-2, -1)) + &self.b).tanh();
        Ok((z + self.shift(&h), self.log_det_from_tanh(&h)))
    }

    fn inverse(&self, y: &Tensor, _context: Option<&Tensor>) -> FlowResult<(Tensor, Tensor)> {
        expect_dim(y, self.dim(), "sylvester")?;
        let t = self.q_transpose_times(y);
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
            let a_i = crate::bijector::tanh_solve::solve(&target, &r, &s, &c, "sylvester")?;
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

/// `{"o_snf": {"length": K, "columns": M}}`: Q has M ≤ D orthonormal columns.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OSnfConfig {
    #[serde(default = "super::one")]
    pub length: i64,
    pub columns: i64,
}

/// `{"h_snf": {"length": K, "reflections": H}}`: Q is a product of H reflections (M = D).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HSnfConfig {
    #[serde(default = "super::one")]
    pub length: i64,
    pub reflections: i64,
}

/// `{"t_snf": {"length": K}}`: Q alternates between I and the reversal permutation (M = D).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TSnfConfig {
    #[serde(default = "super::one")]
    pub length: i64,
}

/// How a Sylvester layer gets Q.
#[derive(Clone, Copy)]
enum QForm {
    Orthogonal { columns: i64 },
    Householder { reflections: i64 },
    Triangular,
}

impl QForm {
    fn kind(self) -> &'static str {
        match self {
            QForm::Orthogonal { .. } => "o_snf",
            QForm::Householder { .. } => "h_snf",
            QForm::Triangular => "t_snf",
        }
    }

    /// M, the width of R₁ and R₂.
    fn m(self, d: i64) -> i64 {
        match self {
            QForm::Orthogonal { columns } => columns,
            _ => d,
        }
    }

    /// Free numbers Q takes per layer.
    fn q_width(self, d: i64) -> i64 {
        match self {
            QForm::Orthogonal { columns } => d * columns,
            QForm::Householder { reflections } => reflections * d,
            QForm::Triangular => 0,
        }
    }
}

fn build_sylvester(length: i64, q: QForm, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
    let d = site.dim;
    let m = q.m(d);
    // Free layers start near the identity: small R (diagonal products near 0).
    let small = uniform(0.01);
    let mut pieces = vec![
        Piece::new("r_full", m * m, small),
        Piece::new("r1_diag", m, small),
        Piece::new("r2_diag", m, small),
        Piece::new("b", m, small),
    ];
    if q.q_width(d) > 0 {
        pieces.push(Piece::new(
            "q",
            q.q_width(d),
            uniform(1.0 / (d as f64).sqrt()),
        ));
    }
    let params = LayerParams::new(site.path, length, pieces, site.features);
    Ok(Box::new(SylvesterLayer { params, q, d }))
}

fn check_columns(columns: i64, dim: Option<i64>) -> Result<(), String> {
    match dim {
        Some(d) if !(1..=d).contains(&columns) => Err(format!(
            "columns must be in 1..={d} (the dimension), got {columns}"
        )),
        None if columns < 1 => Err(format!("columns must be at least 1, got {columns}")),
        _ => Ok(()),
    }
}

impl LayerSpec for OSnfConfig {
    fn validate(&self, dim: Option<i64>) -> Result<(), String> {
        check_length(self.length)?;
        check_columns(self.columns, dim)
    }
    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        let q = QForm::Orthogonal {
            columns: self.columns,
        };
        build_sylvester(self.length, q, site)
    }
    fn label(&self) -> String {
        format!("o_snf-k{}-m{}", self.length, self.columns)
    }
}

impl LayerSpec for HSnfConfig {
    fn validate(&self, _dim: Option<i64>) -> Result<(), String> {
        check_length(self.length)?;
        if self.reflections < 1 {
            return Err(format!(
                "reflections must be at least 1, got {}",
                self.reflections
            ));
        }
        Ok(())
    }
    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        let q = QForm::Householder {
            reflections: self.reflections,
        };
        build_sylvester(self.length, q, site)
    }
    fn label(&self) -> String {
        format!("h_snf-k{}-h{}", self.length, self.reflections)
    }
}

impl LayerSpec for TSnfConfig {
    fn validate(&self, _dim: Option<i64>) -> Result<(), String> {
        check_length(self.length)
    }
    fn build(&self, site: &Site) -> anyhow::Result<Box<dyn FlowLayer>> {
        build_sylvester(self.length, QForm::Triangular, site)
    }
    fn label(&self) -> String {
        format!("t_snf-k{}", self.length)
    }
}

struct SylvesterLayer {
    params: LayerParams,
    q: QForm,
    d: i64,
}

impl FlowLayer for SylvesterLayer {
    fn names(&self) -> Vec<String> {
        numbered(self.q.kind(), self.params.len())
    }

    fn bijectors(&self, input: &LayerInput) -> anyhow::Result<Vec<Box<dyn Bijector>>> {
        let v = self.params.values(input)?;
        let (d, m) = (self.d, self.q.m(self.d));
        let mut layers: Vec<Box<dyn Bijector>> = Vec::new();
        for i in 0..self.params.len() {
            let piece = |j: usize| v[j].select(0, i);
            // Leading axes of one layer's pieces: none (free) or [rows] (amortized).
            let full = piece(0);
            let lead = full.size()[..full.dim() - 1].to_vec();
            let shaped = |t: Tensor, tail: &[i64]| t.reshape([&lead[..], tail].concat());
            let (r1, r2) = upper_triangular(&shaped(full, &[m, m]), &piece(1), &piece(2));
            let (r1, r2, b) = (input.rep(r1), input.rep(r2), input.rep(piece(3)));
            // T-SNF's Q is shared by every row; the rest is per row.
            let flow = match self.q {
                QForm::Orthogonal { columns } => {
                    let q = orthogonalize(&shaped(piece(4), &[d, columns]))?;
                    SylvesterFlow::new(input.rep(q), r1, r2, b)
                }
                QForm::Householder { reflections } => {
                    let v = input.rep(shaped(piece(4), &[reflections, d]));
                    SylvesterFlow::with_reflections(&v, r1, r2, b)
                }
                QForm::Triangular => {
                    let p = &v[0];
                    let q = permutation(d, i % 2 == 1, (p.kind(), p.device()));
                    SylvesterFlow::new(q, r1, r2, b)
                }
            };
            layers.push(Box::new(flow));
        }
        Ok(layers)
    }
}
