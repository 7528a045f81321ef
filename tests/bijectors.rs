//! Every bijector, checked the same three ways:
//! round trip, log-det against the autograd Jacobian per sample (float64), and in 2-D the
//! transformed standard normal integrating to 1 on a grid.
use flowlab::bijector::elementwise::{Affine, Elementwise, Exp, PReLU, Sigmoid, Tanh};
use flowlab::bijector::spline::RationalQuadraticSpline;
use flowlab::bijector::{Bijector, Chain, FlowError, Invert};
use flowlab::distribution::{Distribution, StandardNormal, TransformedDistribution};
use flowlab::flow::planar::PlanarFlow;
use flowlab::flow::radial::RadialFlow;
use flowlab::grid::Grid2d;
use tch::{Device, Kind, Tensor};

mod common;

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn t(v: &[f64]) -> Tensor {
    Tensor::from_slice(v)
}

fn sample(n: i64, d: i64, seed: i64) -> Tensor {
    common::normal_points(n, d, seed)
}

use common::{assert_integrates_to_one, assert_invertible_with_exact_log_det};

fn check_all_three(b: &dyn Bijector) {
    common::three_checks(b, 100_000, 1200);
}

fn planar(u: &[f64], w: &[f64], b: f64) -> PlanarFlow {
    PlanarFlow::new(t(u), t(w), Tensor::from(b))
}

#[test]
fn affine_passes_the_three_checks() {
    check_all_three(&Affine::new(t(&[0.5, -1.0]), t(&[0.3, -0.7])));
}

#[test]
fn prelu_passes_the_three_checks() {
    // Seed eq. 61–63: α ∈ (0, 1].
    check_all_three(&PReLU::new(t(&[0.3, 0.8])));
}

#[test]
fn sigmoid_tanh_exp_pass_the_three_checks() {
    for b in [&Sigmoid as &dyn Bijector, &Tanh, &Exp] {
        assert_invertible_with_exact_log_det(b, &sample(128, 2, 2));
    }
    // Their ranges are bounded or skewed: integrate on grids that fit them.
    assert_integrates_to_one(&Sigmoid, &Grid2d::square(0.0, 1.0, 2000));
    assert_integrates_to_one(&Tanh, &Grid2d::square(-1.0, 1.0, 2000));
    let geometric: Vec<f64> = (0..=3000)
        .map(|i| 1e-5 * (1e8f64).powf(i as f64 / 3000.0))
        .collect();
    assert_integrates_to_one(
        &Exp,
        &Grid2d {
            x_edges: geometric.clone(),
            y_edges: geometric,
        },
    );
}

#[test]
fn planar_passes_the_three_checks() {
    check_all_three(&planar(&[1.0, 0.0], &[5.0, 0.0], 0.0));
    check_all_three(&planar(&[-0.7, 1.3], &[2.0, -1.5], 0.4));
}

#[test]
fn planar_close_to_its_invertibility_limit_still_inverts() {
    // wᵀu ≪ −1 is mapped to wᵀû = −1 + softplus(wᵀu) ≈ −1 + 5e-5: nearly singular, still exact.
    let f = planar(&[-2.0, -2.0], &[2.5, 2.5], 0.1);
    let wu = f.w_dot_u_hat().double_value(&[]);
    assert!((-1.0..-0.999).contains(&wu), "wᵀû = {wu}");
    assert_invertible_with_exact_log_det(&f, &sample(128, 2, 3));
}

#[test]
fn planar_constraint_holds_for_random_and_amortized_parameters() {
    tch::manual_seed(11);
    let u = Tensor::randn([500, 3], F64) * 4.0;
    let w = Tensor::randn([500, 3], F64) * 4.0;
    let b = Tensor::randn([500], F64);
    let f = PlanarFlow::new(u, w, b);
    // wᵀû = −1 + softplus(wᵀu) > −1 exactly; in float64 the sum can round to −1 − O(1e-15).
    let min = f.w_dot_u_hat().min().double_value(&[]);
    assert!(min >= -1.0 - 1e-12, "min wᵀû = {min}");
    // Per-sample parameters (as an encoder would produce): one set per row of z.
    assert_invertible_with_exact_log_det(&f, &sample(500, 3, 4));
}

#[test]
fn radial_passes_the_three_checks() {
    check_all_three(&RadialFlow::new(
        t(&[0.5, 0.0]),
        Tensor::from(0.5),
        Tensor::from(1.0),
    ));
    // Contracting: β close to its limit −α.
    check_all_three(&RadialFlow::new(
        t(&[-0.3, 0.8]),
        Tensor::from(1.2),
        Tensor::from(-1.1),
    ));
}

#[test]
fn radial_constraint_and_amortized_parameters() {
    tch::manual_seed(12);
    let z0 = Tensor::randn([300, 4], F64);
    let a = Tensor::randn([300], F64) * 3.0;
    let b = Tensor::randn([300], F64) * 3.0;
    let f = RadialFlow::from_unconstrained(z0, &a, &b);
    let slack = (f.beta() + f.alpha()).min().double_value(&[]);
    assert!(slack >= 0.0 && f.alpha().min().double_value(&[]) > 0.0);
    assert_invertible_with_exact_log_det(&f, &sample(300, 4, 5));
}

#[test]
fn radial_gradient_is_finite_at_its_own_centre() {
    // r = ‖z − z₀‖ = 0 exactly: √ has an infinite derivative there; the layer must not turn that
    // into a NaN gradient (it once did, when a sample coincided with z₀).
    let z0 = t(&[0.3, -0.2]).set_requires_grad(true);
    let f = RadialFlow::new(z0.shallow_clone(), Tensor::from(0.5), Tensor::from(1.0));
    let z = t(&[0.3, -0.2, 1.0, 1.0]).reshape([2, 2]);
    let (y, ld) = f.forward(&z, None).unwrap();
    let loss = y.sum(Kind::Double) + ld.sum(Kind::Double);
    let g = Tensor::run_backward(&[&loss], &[&z0], false, false)[0].shallow_clone();
    assert!(g.isfinite().all().int64_value(&[]) == 1, "{g:?}");
}

#[test]
fn chain_and_invert_compose() {
    let chain = Chain::new(vec![
        Box::new(planar(&[1.0, 0.5], &[3.0, -1.0], 0.2)),
        Box::new(RadialFlow::new(
            t(&[0.5, 0.0]),
            Tensor::from(0.5),
            Tensor::from(1.0),
        )),
        Box::new(Affine::new(t(&[0.1, 0.2]), t(&[0.2, -0.1]))),
        Box::new(PReLU::new(t(&[0.5, 0.9]))),
    ]);
    check_all_three(&chain);
    assert_eq!(chain.layers().len(), 4);
    let inv = Invert(Box::new(chain));
    assert_invertible_with_exact_log_det(&inv, &sample(64, 2, 6));
}

#[test]
fn a_wrong_width_is_a_typed_shape_error() {
    let f = planar(&[1.0, 0.0], &[1.0, 0.0], 0.0);
    match f.forward(&sample(4, 3, 0), None) {
        Err(FlowError::Shape {
            expected: 2, got, ..
        }) => assert_eq!(got, vec![4, 3]),
        other => panic!("expected a shape error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn samples_and_density_agree() {
    // A histogram of 400k samples of q against exp(log q) integrated over the same bins.
    let flow = Chain::new(vec![
        Box::new(planar(&[1.0, 0.0], &[5.0, 0.0], 0.0)),
        Box::new(RadialFlow::new(
            t(&[0.5, 0.5]),
            Tensor::from(0.5),
            Tensor::from(1.0),
        )),
    ]);
    let q = TransformedDistribution::new(
        Box::new(StandardNormal::new(vec![2], Kind::Double, Device::Cpu)),
        Box::new(flow),
    );
    tch::manual_seed(21);
    let n = 400_000;
    let y = q.sample(n).unwrap();
    let (lo, hi, bins) = (-4.0, 4.0, 16usize);
    let width = (hi - lo) / bins as f64;
    let pts = Vec::<f64>::try_from(y.flatten(0, -1)).unwrap();
    let mut counts = vec![0.0; bins * bins];
    for p in pts.chunks(2) {
        let (i, j) = (((p[0] - lo) / width).floor(), ((p[1] - lo) / width).floor());
        if i >= 0.0 && j >= 0.0 && (i as usize) < bins && (j as usize) < bins {
            counts[j as usize * bins + i as usize] += 1.0 / n as f64;
        }
    }
    let mut tv = 0.0;
    for j in 0..bins {
        for i in 0..bins {
            let x0 = lo + i as f64 * width;
            let y0 = lo + j as f64 * width;
            let cell = Grid2d::rect((x0, x0 + width), (y0, y0 + width), 40);
            let mass = cell
                .log_integral(Device::Cpu, &mut |p| q.log_prob(p).unwrap())
                .exp();
            tv += (mass - counts[j * bins + i]).abs();
        }
    }
    tv *= 0.5;
    // Sampling noise alone gives TV ≈ 0.005 here; a wrong log-det sign or inverse gives ≫ 0.05.
    assert!(
        tv < 0.02,
        "total variation between samples and density: {tv}"
    );
}

#[test]
fn planar_inverse_is_differentiable_in_the_parameters() {
    // The inverse's Newton solve is detached; one final Newton step restores the implicit
    // gradient. θ = w; compare against central finite differences.
    let planar = |w: &Tensor| -> Box<dyn Bijector> {
        Box::new(PlanarFlow::new(
            t(&[0.8, -0.4]),
            w.shallow_clone(),
            Tensor::from(0.3),
        ))
    };
    assert_inverse_gradient(&sample(16, 2, 9), &[1.5, 0.7], &planar);
}

#[test]
fn permutations_pass_the_three_checks_and_refuse_non_permutations() {
    use flowlab::flow::permute::Permute;
    check_all_three(&Permute::reverse(2));
    let p = Permute::new(&[2, 0, 4, 1, 3]).unwrap();
    assert_invertible_with_exact_log_det(&p, &sample(64, 5, 4));
    let (y, _) = p
        .forward(&t(&[10.0, 11.0, 12.0, 13.0, 14.0]).unsqueeze(0), None)
        .unwrap();
    assert_eq!(
        Vec::<f64>::try_from(y.squeeze()).unwrap(),
        vec![12.0, 10.0, 14.0, 11.0, 13.0]
    );
    assert!(Permute::new(&[0, 0, 1]).is_err());
}

#[test]
fn the_logistic_base_is_normalized_and_samples_match_it() {
    use flowlab::distribution::StandardLogistic;
    let d = StandardLogistic::new(vec![2], Kind::Double, Device::Cpu);
    let grid = Grid2d::square(-40.0, 40.0, 2000);
    let log_z = grid.log_integral(Device::Cpu, &mut |pts| d.log_prob(pts).unwrap());
    assert!((log_z.exp() - 1.0).abs() < 1e-3, "∫p = {}", log_z.exp());
    tch::manual_seed(5);
    let x = d.sample(200_000).unwrap();
    let var = x.var(true).double_value(&[]);
    let expected = std::f64::consts::PI.powi(2) / 3.0;
    assert!((var - expected).abs() < 0.05, "variance {var} vs π²/3");
}

#[test]
fn rational_quadratic_spline_passes_the_three_checks() {
    // Per-dimension splines (parameters [2, 3K − 1] shared by the batch), 6 bins on [−2, 2]:
    // standard-normal samples fall both inside and in the identity tails.
    tch::manual_seed(11);
    let raw = Tensor::randn([2, 17], F64) * 1.5;
    check_all_three(&RationalQuadraticSpline::from_raw(&raw, 6, 2.0));
}

#[test]
fn rational_quadratic_spline_is_the_identity_at_zero_and_outside_its_bound() {
    let x = t(&[-5.0, -3.0, -0.7, 0.0, 0.4, 2.9, 3.0, 7.5]);
    let zero = RationalQuadraticSpline::from_raw(&Tensor::zeros([8, 11], F64), 4, 3.0);
    let (y, ld) = Elementwise::forward_elementwise(&zero, &x).unwrap();
    assert!((&y - &x).abs().max().double_value(&[]) < 1e-12, "{y:?}");
    assert!(ld.abs().max().double_value(&[]) < 1e-12, "{ld:?}");
    tch::manual_seed(3);
    let bent = RationalQuadraticSpline::from_raw(&(Tensor::randn([8, 11], F64) * 2.0), 4, 3.0);
    let (y, ld) = Elementwise::forward_elementwise(&bent, &x).unwrap();
    let outside = [0usize, 7];
    for i in 0..8 {
        let (xi, yi, li) = (
            x.double_value(&[i as i64]),
            y.double_value(&[i as i64]),
            ld.double_value(&[i as i64]),
        );
        if outside.contains(&i) {
            assert_eq!((yi, li), (xi, 0.0), "tail at x = {xi}");
        } else {
            assert!(yi.abs() <= 3.0, "x = {xi} maps to {yi}, outside [−3, 3]");
        }
    }
    // Strictly increasing across the whole line, continuous at ±B (knots pinned there).
    let one = RationalQuadraticSpline::from_raw(&(Tensor::randn([1, 11], F64) * 2.0), 4, 3.0);
    let line = Tensor::linspace(-4.0, 4.0, 8001, F64).unsqueeze(1);
    let (y, _) = Elementwise::forward_elementwise(&one, &line).unwrap();
    let steps = y.diff(1, 0, None::<Tensor>, None::<Tensor>);
    assert!(steps.min().double_value(&[]) > 0.0, "not increasing");
    assert!(
        steps.max().double_value(&[]) < 0.02,
        "a jump: {}",
        steps.max().double_value(&[])
    );
    let (b, _) = Elementwise::forward_elementwise(&one, &t(&[-3.0, 3.0]).unsqueeze(1)).unwrap();
    assert!(
        (b - t(&[-3.0, 3.0]).unsqueeze(1))
            .abs()
            .max()
            .double_value(&[])
            < 1e-12
    );
}

/// d/dθ of Σ(‖x‖² + ln|det|) through `inverse`, by autograd and by central differences, for
/// each component of the parameter vector θ (`build` makes the bijector from θ).
fn assert_inverse_gradient(
    y: &Tensor,
    theta: &[f64],
    build: &dyn Fn(&Tensor) -> Box<dyn Bijector>,
) {
    let loss_at = |th: &Tensor| {
        let (x, ld) = build(th).inverse(y, None).unwrap();
        x.square().sum(Kind::Double) + ld.sum(Kind::Double)
    };
    let th = t(theta).set_requires_grad(true);
    let g = Tensor::run_backward(&[&loss_at(&th)], &[&th], false, false)[0].shallow_clone();
    assert!(
        bool::try_from(g.isfinite().all()).unwrap(),
        "gradient {g:?}"
    );
    for k in 0..theta.len() as i64 {
        let h = 1e-6;
        let e =
            Tensor::zeros([theta.len() as i64], F64).index_fill(0, &Tensor::from_slice(&[k]), h);
        let fd = (loss_at(&(t(theta) + &e)).double_value(&[])
            - loss_at(&(t(theta) - &e)).double_value(&[]))
            / (2.0 * h);
        let an = g.double_value(&[k]);
        assert!(
            (fd - an).abs() < 1e-4 * (1.0 + fd.abs()),
            "component {k}: autograd {an}, finite difference {fd}"
        );
    }
}

#[test]
fn radial_inverse_gradient_is_finite_and_matches_finite_differences() {
    // θ = (z₀, α′, β′). Points on both sides of the branch in the closed-form root and one at
    // the centre itself, where the unused branch of a `where` divides by zero.
    let radial = |th: &Tensor| -> Box<dyn Bijector> {
        Box::new(RadialFlow::from_unconstrained(
            th.narrow(0, 0, 2),
            &th.get(2),
            &th.get(3),
        ))
    };
    for theta in [[0.3, -0.2, 0.5, 1.5], [0.3, -0.2, 0.5, -3.0]] {
        assert_inverse_gradient(&(sample(16, 2, 4) * 3.0), &theta, &radial);
        // At the centre the map has a kink (r = 0): no finite difference to compare with, but
        // the gradient must still be finite.
        let th = t(&theta).set_requires_grad(true);
        let centre = t(&theta[..2]).unsqueeze(0);
        let (x, ld) = radial(&th).inverse(&centre, None).unwrap();
        let loss = x.square().sum(Kind::Double) + ld.sum(Kind::Double);
        let g = Tensor::run_backward(&[&loss], &[&th], false, false)[0].shallow_clone();
        assert!(
            bool::try_from(g.isfinite().all()).unwrap(),
            "gradient at the centre {g:?}"
        );
    }
}

#[test]
fn sylvester_inverse_gradient_matches_finite_differences() {
    use flowlab::flow::sylvester::{orthogonalize, upper_triangular, SylvesterFlow};
    // θ = (R full 2×2, diagonals 2 + 2, b 2, Q raw 3×2) for D = 3, M = 2.
    let sylvester = |th: &Tensor| -> Box<dyn Bijector> {
        let (r1, r2) = upper_triangular(
            &th.narrow(0, 0, 4).reshape([2, 2]),
            &th.narrow(0, 4, 2),
            &th.narrow(0, 6, 2),
        );
        let q = orthogonalize(&th.narrow(0, 10, 6).reshape([3, 2])).unwrap();
        Box::new(SylvesterFlow::new(q, r1, r2, th.narrow(0, 8, 2)))
    };
    let theta = [
        0.4, -0.7, 0.9, 0.2, 1.1, -0.8, 0.6, 1.4, 0.3, -0.5, 1.0, 0.2, -0.3, 0.9, 0.4, 0.7,
    ];
    assert_inverse_gradient(&(sample(16, 3, 5) * 2.0), &theta, &sylvester);
}

/// A spline's bins each keep at least 1e-3 of the interval, so 1,000 bins or more would leave
/// the learned widths nothing (zero or negative widths): refused with a reason, as are fewer
/// than 2 bins and a bound that is not positive; 999 bins and 2 bins are fine.
#[test]
fn spline_laws_outside_their_range_are_refused() {
    use flowlab::bijector::law::Law;
    let err = |bins: i64, bound: f64| Law::Spline { bins, bound }.validate().err();
    for bins in [1000, 5000] {
        let e = err(bins, 3.0).expect("too many bins accepted");
        assert!(
            e.contains("fewer than 1000") && e.contains(&bins.to_string()),
            "{e}"
        );
    }
    assert!(err(1, 3.0).unwrap().contains("at least 2"));
    assert!(err(8, 0.0).unwrap().contains("bound"));
    assert_eq!(err(999, 3.0), None);
    assert_eq!(err(2, 3.0), None);
}
