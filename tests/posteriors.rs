//! The amortized posteriors of the VAE family and the bijectors they add (gated IAF, Sylvester):
//! per-sample log-det against autograd, round trips, constraints under random encoder outputs,
//! and orthogonality of Sylvester's Q.
use flowlab::bijector::checks::{density_integral, log_det_error, round_trip};
use flowlab::bijector::Bijector;
use flowlab::flow::autoregressive::GatedIaf;
use flowlab::flow::sylvester::{
    householder, orthogonalize, permutation, upper_triangular, SylvesterFlow,
};
use flowlab::grid::Grid2d;
use flowlab::model::posterior::{gaussian_kl, Posterior, PosteriorConfig};
use flowlab::nn::made::Made;
use tch::{nn, Device, Kind, Tensor};

mod common;

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

/// Every layer kind that computes its parameters per data point, as a posterior of its own,
/// and one posterior of several blocks.
fn configs() -> Vec<PosteriorConfig> {
    common::EVERY_LAYER
        .iter()
        .filter(|(_, amortized)| *amortized)
        .map(|(j, _)| *j)
        .chain([r#"[{"planar": {"length": 2}}, {"t_snf": {}}]"#])
        .map(|j| serde_json::from_str(j).unwrap())
        .collect()
}

/// A posterior in float64 with random weights everywhere (also where training starts from zero,
/// as MADE's last layer), so the flows are far from the identity.
fn posterior(cfg: &PosteriorConfig, seed: i64) -> (nn::VarStore, Posterior) {
    tch::manual_seed(seed);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let p = Posterior::new(
        &(vs.root() / "encoder"),
        &(vs.root() / "posterior"),
        cfg,
        16,
        5,
    )
    .unwrap();
    vs.double();
    tch::no_grad(|| {
        // A fixed order (the var store's map has none): the same weights every run.
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, mut v) in vars {
            v.copy_(&(Tensor::randn(v.size(), F64) * 0.3));
        }
    });
    (vs, p)
}

#[test]
fn every_amortized_flow_has_exact_per_sample_log_det_and_inverse() {
    let _rng = common::rng_lock();
    for cfg in configs() {
        let (_vs, post) = posterior(&cfg, 1);
        let h = Tensor::randn([12, 16], F64) * 2.0;
        let flow = post.flow(&h).unwrap();
        let z = Tensor::randn([12, 5], F64);
        let err = log_det_error(&flow, &z, None).unwrap();
        assert!(err < 1e-8, "{}: log-det vs autograd {err}", cfg.label());
        let rt = round_trip(&flow, &z, None).unwrap();
        assert!(
            rt.max_abs_error < 1e-7 && rt.max_log_det_error < 1e-7,
            "{}: round trip {rt:?}",
            cfg.label()
        );
        // Each sample has its own parameters: the same z in two rows maps differently.
        let same = z.narrow(0, 0, 1).repeat([12, 1]);
        let (y, _) = flow.forward(&same, None).unwrap();
        let spread = (&y - y.narrow(0, 0, 1)).abs().max().double_value(&[]);
        assert!(
            spread > 1e-3,
            "{}: parameters are not per sample",
            cfg.label()
        );
    }
}

#[test]
fn posterior_samples_carry_consistent_log_densities() {
    let _rng = common::rng_lock();
    // Several rows (parameters repeated per sample) and one row (parameters broadcast).
    for (cfg, rows) in configs().into_iter().flat_map(|c| [(c.clone(), 4), (c, 1)]) {
        let (_vs, post) = posterior(&cfg, 2);
        let h = Tensor::randn([rows, 16], F64);
        let s = post.sample(&h, 3).unwrap();
        assert_eq!(s.z.size(), vec![rows * 3, 5], "{}", cfg.label());
        let total = s
            .layer_log_dets
            .iter()
            .fold(s.log_det.zeros_like(), |a, l| a + l);
        assert!(total.allclose(&s.log_det, 1e-12, 1e-12, false));
        // ln q_K(z_K) = ln q0(z0) − Σ ln|det|: invert z_K and compare.
        let flow = post
            .flow(&h.repeat_interleave_self_int(3, 0, None))
            .unwrap();
        let (z0, inv_ld) = flow.inverse(&s.z, None).unwrap();
        assert!(
            z0.allclose(&s.z0, 1e-7, 1e-7, false),
            "{} ({rows} rows)",
            cfg.label()
        );
        assert!((inv_ld + &s.log_det).abs().max().double_value(&[]) < 1e-7);
    }
}

#[test]
fn constraints_hold_for_random_encoder_outputs() {
    let _rng = common::rng_lock();
    tch::manual_seed(3);
    // Planar: wᵀû ≥ −1 for any (u, w), including wᵀu ≪ −1, per sample.
    let u = Tensor::randn([256, 5], F64) * 10.0;
    let w = -&u + Tensor::randn([256, 5], F64);
    let f = flowlab::flow::planar::PlanarFlow::new(u, w, Tensor::randn([256], F64));
    // (−1 + softplus(x) for x ≪ 0 is −1 up to rounding.)
    assert!(f.w_dot_u_hat().min().double_value(&[]) >= -1.0 - 1e-12);
    // Bounded planar: wᵀû ≥ −(1 − 10⁻⁴) (a margin, so ln|det| ≥ ln 10⁻⁴ everywhere), û = u
    // where wᵀu ≥ 0, and ‖û‖ ≤ 2‖u‖ however small ‖w‖: the paper's form moves û by
    // |m(wᵀu) − wᵀu|/‖w‖ there, without bound.
    use flowlab::flow::planar::{Constraint, PlanarFlow, MARGIN};
    let (u, b) = (
        Tensor::randn([256, 5], F64) * 10.0,
        Tensor::randn([256], F64),
    );
    let w = -&u + Tensor::randn([256, 5], F64);
    let f =
        PlanarFlow::with_constraint(u.shallow_clone(), w, b.shallow_clone(), Constraint::Bounded);
    assert!(f.w_dot_u_hat().min().double_value(&[]) >= -(1.0 - MARGIN) - 1e-12);
    let z = Tensor::randn([256, 5], F64) * 3.0;
    let (_, ld) = f.forward(&z, None).unwrap();
    assert!(
        ld.min().double_value(&[]) >= MARGIN.ln() - 1e-9,
        "{}",
        ld.min()
    );
    let tiny_w = Tensor::randn([256, 5], F64) * 1e-6;
    let norm = |t: &Tensor| t.square().sum_dim_intlist(-1, false, t.kind()).sqrt();
    for (c, bounded) in [(Constraint::Bounded, true), (Constraint::Softplus, false)] {
        let f = PlanarFlow::with_constraint(
            u.shallow_clone(),
            tiny_w.shallow_clone(),
            b.shallow_clone(),
            c,
        );
        let ratio = (norm(f.u_hat()) / norm(&u)).max().double_value(&[]);
        assert_eq!(ratio <= 2.0 + 1e-9, bounded, "{c:?}: ‖û‖/‖u‖ up to {ratio}");
    }
    let pos = Tensor::randn([256, 5], F64).abs();
    let f = PlanarFlow::with_constraint(
        pos.shallow_clone(),
        pos.shallow_clone(),
        b,
        Constraint::Bounded,
    );
    assert!(f.u_hat().equal(&pos), "û = u where wᵀu ≥ 0");
    // Radial: β ≥ −α.
    let r = flowlab::flow::radial::RadialFlow::from_unconstrained(
        Tensor::randn([256, 5], F64),
        &(Tensor::randn([256], F64) * 10.0),
        &(Tensor::randn([256], F64) * 10.0),
    );
    assert!((r.beta() + r.alpha()).min().double_value(&[]) >= 0.0);
    // Sylvester: r₁,ᵢᵢ r₂,ᵢᵢ > −1 however large the free diagonals.
    let (r1, r2) = upper_triangular(
        &Tensor::randn([256, 4, 4], F64),
        &(Tensor::randn([256, 4], F64) * 50.0),
        &(Tensor::randn([256, 4], F64) * 50.0),
    );
    let s = SylvesterFlow::new(
        Tensor::eye(4, F64),
        r1.shallow_clone(),
        r2,
        Tensor::zeros([256, 4], F64),
    );
    assert!(s.diagonal_products().min().double_value(&[]) > -1.0);
    assert!(
        r1.tril(-1).abs().max().double_value(&[]) == 0.0,
        "R₁ is upper triangular"
    );
}

#[test]
fn orthogonalized_and_householder_q_are_orthogonal() {
    let _rng = common::rng_lock();
    tch::manual_seed(4);
    for kind in [Kind::Float, Kind::Double] {
        let q = orthogonalize(&Tensor::randn([64, 32, 16], (kind, Device::Cpu))).unwrap();
        let err = (q.transpose(-2, -1).matmul(&q) - Tensor::eye(16, (kind, Device::Cpu)))
            .abs()
            .max()
            .double_value(&[]);
        assert!(err < 1e-5, "{kind:?}: |QᵀQ − I| = {err}");
    }
    let h = householder(&Tensor::randn([64, 3, 8], F64));
    let err = (h.transpose(-2, -1).matmul(&h) - Tensor::eye(8, F64))
        .abs()
        .max()
        .double_value(&[]);
    assert!(err < 1e-12, "Householder product: |QᵀQ − I| = {err}");
    let p = permutation(5, true, F64);
    assert_eq!(
        Vec::<f64>::try_from(p.select(0, 0)).unwrap(),
        vec![0.0, 0.0, 0.0, 0.0, 1.0]
    );
}

/// O-SNF at the protocol's sizes (z = 64, M = 32 columns, a batch of encoder outputs) in float32:
/// a rank-deficient matrix (a zero column: a singular value of 0, which the iteration never
/// moves) still gets an orthonormal Q (the QR fallback) instead of aborting training.
#[test]
fn orthogonalization_of_a_rank_deficient_matrix_does_not_abort() {
    let _rng = common::rng_lock();
    tch::manual_seed(5);
    let opts = (Kind::Float, Device::Cpu);
    let a = Tensor::randn([8, 64, 32], opts);
    let _ = a.select(2, 1).fill_(0.0);
    let q = orthogonalize(&a).expect("the orthogonalization aborted");
    assert_eq!(q.size(), [8, 64, 32]);
    let err = (q.transpose(-2, -1).matmul(&q) - Tensor::eye(32, opts))
        .abs()
        .max()
        .double_value(&[]);
    assert!(err < 1e-4, "|QᵀQ − I| = {err}");
    // Q spans the same columns: its first column is the first input column, normalized.
    let first = a.select(2, 0)
        / a.select(2, 0)
            .norm_scalaropt_dim(2, [1i64].as_slice(), true);
    let cos = (q.select(2, 0) * first)
        .sum_dim_intlist(1, false, Kind::Float)
        .abs();
    assert!(cos.min().double_value(&[]) > 0.999, "first column {cos:?}");
}

/// The three checks on 2-D Sylvester and gated IAF layers with free parameters.
#[test]
fn sylvester_and_gated_iaf_pass_the_three_checks() {
    let _rng = common::rng_lock();
    // Fixed parameters: tests share libtorch's generator across threads.
    let fixed = |v: &[f64], shape: &[i64]| Tensor::from_slice(v).reshape(shape);
    let (r1, r2) = upper_triangular(
        &fixed(&[0.4, -0.7, 1.1, 0.2], &[2, 2]),
        &Tensor::from_slice(&[2.0, -1.0]),
        &Tensor::from_slice(&[1.5, 2.0]),
    );
    let layers: Vec<Box<dyn Bijector>> = vec![
        Box::new(SylvesterFlow::new(
            orthogonalize(&fixed(&[0.9, -0.3, 0.5, 1.2], &[2, 2])).unwrap(),
            r1,
            r2,
            Tensor::from_slice(&[0.3, -0.2]),
        )),
        Box::new(SylvesterFlow::new(
            orthogonalize(&fixed(&[0.6, -0.8], &[2, 1])).unwrap(),
            Tensor::from_slice(&[3.0]).reshape([1, 1]),
            Tensor::from_slice(&[0.8]).reshape([1, 1]),
            Tensor::from_slice(&[0.5]),
        )),
        {
            let vs = nn::VarStore::new(Device::Cpu);
            let made = Made::new(&vs.root(), &[2, 1], &[16, 16], 2, 0);
            let mut vs = vs;
            vs.double();
            tch::no_grad(|| {
                for (_, mut v) in vs.variables() {
                    let n: i64 = v.size().iter().product();
                    let pattern = (Tensor::arange(n, F64) * 1.7 + 0.3).sin().reshape(v.size());
                    v.copy_(&(pattern * 0.7));
                }
            });
            Box::new(GatedIaf::new(made, 1.0))
        },
    ];
    for b in &layers {
        let x = Tensor::randn([128, 2], F64);
        let rt = round_trip(b.as_ref(), &x, None).unwrap();
        assert!(
            rt.max_abs_error < 1e-8 && rt.max_log_det_error < 1e-8,
            "{}: {rt:?}",
            b.name()
        );
        assert!(
            log_det_error(b.as_ref(), &x, None).unwrap() < 1e-8,
            "{}",
            b.name()
        );
        let z = Tensor::randn([100_000, 2], F64);
        let (y, _) = tch::no_grad(|| b.forward(&z, None)).unwrap();
        let integral = density_integral(b.as_ref(), &Grid2d::from_samples(&y, 1000)).unwrap();
        assert!(
            (integral - 1.0).abs() < 1e-3,
            "{}: ∫q = {integral}",
            b.name()
        );
    }
}

#[test]
fn analytic_kl_matches_monte_carlo() {
    let _rng = common::rng_lock();
    tch::manual_seed(6);
    let mean = Tensor::randn([3, 4], F64);
    let log_var = Tensor::randn([3, 4], F64) * 0.5;
    let kl = gaussian_kl(&mean, &log_var);
    let n = 400_000;
    let eps = Tensor::randn([n, 3, 4], F64);
    let z = &mean + (&log_var * 0.5).exp() * eps;
    let log_q = flowlab::model::posterior::diag_normal_log_prob(&z, &mean, &log_var);
    let log_p = flowlab::model::vae::standard_normal_log_prob(&z);
    let mc = (log_q - log_p).mean_dim(0, false, Kind::Double);
    let err = (&mc - kl.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[]);
    assert!(err < 0.02, "KL analytic vs MC differ by {err}");
}

/// H-SNF applies its reflections to vectors (O(nD) per sample) instead of forming Q (O(nD²)):
/// the same outputs and log-dets as the explicit matrix, forward and inverse, free and amortized.
#[test]
fn householder_reflections_applied_to_vectors_equal_the_explicit_q() {
    let _rng = common::rng_lock();
    tch::manual_seed(5);
    for lead in [vec![], vec![7i64]] {
        let shape = |tail: &[i64]| [&lead[..], tail].concat();
        let v = Tensor::randn(shape(&[4, 6]), F64);
        let full = Tensor::randn(shape(&[6, 6]), F64) * 0.5;
        let (r1, r2) = upper_triangular(
            &full,
            &Tensor::randn(shape(&[6]), F64),
            &Tensor::randn(shape(&[6]), F64),
        );
        let b = Tensor::randn(shape(&[6]), F64);
        let explicit = SylvesterFlow::new(
            householder(&v),
            r1.shallow_clone(),
            r2.shallow_clone(),
            b.shallow_clone(),
        );
        let fast = SylvesterFlow::with_reflections(&v, r1, r2, b);
        let z = Tensor::randn([7, 6], F64);
        let (y1, ld1) = explicit.forward(&z, None).unwrap();
        let (y2, ld2) = fast.forward(&z, None).unwrap();
        let err = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
        assert!(
            err(&y1, &y2) < 1e-12 && err(&ld1, &ld2) < 1e-12,
            "forward differs"
        );
        let (z2, ild) = fast.inverse(&y2, None).unwrap();
        assert!(
            err(&z2, &z) < 1e-9 && err(&ild, &(-&ld2)) < 1e-9,
            "inverse differs"
        );
    }
}
