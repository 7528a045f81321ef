//! The toy targets U1–U4 and their grid ln Z.
use flowlab::grid::Grid2d;
use flowlab::target::Target;
use tch::Tensor;

#[test]
fn log_z_has_converged_on_its_grid() {
    // A finer and a wider grid agree with the one flowlab uses to 1e-4, so KL = F + ln Z is
    // accurate to that.
    for target in Target::ALL {
        let used = target.log_z();
        let finer = target.log_z_on(&Grid2d::square(-16.0, 16.0, 4000));
        let wider = target.log_z_on(&Grid2d::square(-20.0, 20.0, 3750));
        assert!(
            (used - finer).abs() < 1e-4,
            "{}: {used} vs finer {finer}",
            target.name()
        );
        assert!(
            (used - wider).abs() < 1e-4,
            "{}: {used} vs wider {wider}",
            target.name()
        );
    }
}

#[test]
fn u1_matches_its_closed_form_at_known_points() {
    // At z = (2, 0): ‖z‖ = 2 so the ring term is 0; the modes term is
    // −ln(1 + exp(−½(4/0.6)²)).
    let z = Tensor::from_slice(&[2.0f64, 0.0]).reshape([1, 2]);
    let u = Target::U1.energy(&z).double_value(&[0]);
    let expected = -(1.0f64 + (-0.5 * (4.0f64 / 0.6).powi(2)).exp()).ln();
    assert!((u - expected).abs() < 1e-12, "{u} vs {expected}");
}

#[test]
fn envelope_makes_u2_to_u4_proper_but_leaves_the_window_nearly_unchanged() {
    // On the sine ridge z2 = w1(z1) U2 is just the envelope: ½ Σ z_i⁴ / 8⁴.
    let z1 = 3.0f64;
    let z2 = (2.0 * std::f64::consts::PI * z1 / 4.0).sin();
    let z = Tensor::from_slice(&[z1, z2]).reshape([1, 2]);
    let u = Target::U2.energy(&z).double_value(&[0]);
    let envelope = 0.5 * (z1.powi(4) + z2.powi(4)) / 4096.0;
    assert!((u - envelope).abs() < 1e-12);
    // Even at (4, 4), the corner of the drawn window, the envelope adds only 512/8192 = 0.0625.
    assert!(envelope < 0.011, "envelope {envelope}");
    for t in Target::ALL {
        assert!(t.log_z().is_finite(), "{} has finite ln Z", t.name());
    }
}

#[test]
fn targets_parse_case_insensitively_and_reject_unknown_names() {
    assert_eq!(Target::parse("u3").unwrap(), Target::U3);
    let err = Target::parse("U7").unwrap_err().to_string();
    assert!(
        err.contains("U7") && err.contains("U1, U2, U3, U4"),
        "{err}"
    );
}

/// U1–U4 of Rezende & Mohamed (2015, Table 1), written out again in plain f64 from the paper's
/// formulas (plus flowlab's envelope ½(‖z‖₄/8)⁴ on U2–U4), at points where every term is active.
fn reference_energy(t: Target, z1: f64, z2: f64) -> f64 {
    use std::f64::consts::PI;
    let lse = |a: f64, b: f64| a.max(b) + ((a - a.max(b)).exp() + (b - a.max(b)).exp()).ln();
    let w1 = (2.0 * PI * z1 / 4.0).sin();
    let w2 = 3.0 * (-0.5 * ((z1 - 1.0) / 0.6).powi(2)).exp();
    let w3 = 3.0 / (1.0 + (-(z1 - 1.0) / 0.3).exp());
    let envelope = 0.5 * (z1.powi(4) + z2.powi(4)) / 8f64.powi(4);
    let g = |x: f64, s: f64| -0.5 * (x / s).powi(2);
    match t {
        Target::U1 => {
            let r = (z1 * z1 + z2 * z2).sqrt();
            0.5 * ((r - 2.0) / 0.4).powi(2) - lse(g(z1 - 2.0, 0.6), g(z1 + 2.0, 0.6))
        }
        Target::U2 => 0.5 * ((z2 - w1) / 0.4).powi(2) + envelope,
        Target::U3 => -lse(g(z2 - w1, 0.35), g(z2 - w1 + w2, 0.35)) + envelope,
        Target::U4 => -lse(g(z2 - w1, 0.4), g(z2 - w1 + w3, 0.35)) + envelope,
    }
}

#[test]
fn every_target_matches_the_paper_formula_at_generic_points() {
    let points = [
        (0.3, -1.2),
        (1.7, 0.4),
        (-2.5, 2.2),
        (0.9, -0.1),
        (3.1, 3.3),
    ];
    for t in Target::ALL {
        let z = Tensor::from_slice(&points.iter().flat_map(|&(a, b)| [a, b]).collect::<Vec<_>>())
            .reshape([points.len() as i64, 2]);
        let u = t.energy(&z);
        for (i, &(z1, z2)) in points.iter().enumerate() {
            let got = u.double_value(&[i as i64]);
            let want = reference_energy(t, z1, z2);
            assert!(
                (got - want).abs() < 1e-9 * (1.0 + want.abs()),
                "{} at ({z1}, {z2}): {got} vs {want}",
                t.name()
            );
        }
    }
}
