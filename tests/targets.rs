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
