//! Unnormalized 2-D energies U1–U4 of Rezende & Mohamed (2015), Table 1: p(z) ∝ exp(−U(z)).
//!
//! U2–U4 as printed do not decay along z1, so flowlab adds the envelope E(z) = ½(‖z‖₄/8)⁴ to
//! them (the paper's U2–U4 do not integrate); with it U1 and U2 equal normflows' `TwoModes(2, 0.2)` and
//! `Sinusoidal(0.4, 4)`. ln Z is computed once per process by grid integration so that a fit can
//! report KL(q‖p) = F + ln Z ≥ 0.
use crate::grid::Grid2d;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;
use std::sync::OnceLock;
use tch::{Device, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    U1,
    U2,
    U3,
    U4,
}

/// ln(exp(a) + exp(b)), stable.
fn log_add_exp(a: &Tensor, b: &Tensor) -> Tensor {
    Tensor::stack(&[a, b], 0).logsumexp([0], false)
}

fn gauss_exponent(x: &Tensor, scale: f64) -> Tensor {
    (x / scale).square() * -0.5
}

impl Target {
    pub const ALL: [Target; 4] = [Target::U1, Target::U2, Target::U3, Target::U4];

    pub fn name(&self) -> &'static str {
        match self {
            Target::U1 => "U1",
            Target::U2 => "U2",
            Target::U3 => "U3",
            Target::U4 => "U4",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Target> {
        Target::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| anyhow::anyhow!("unknown target '{s}' (expected one of U1, U2, U3, U4)"))
    }

    /// U(z) for `z: [n, 2]`, returns `[n]`.
    pub fn energy(&self, z: &Tensor) -> Tensor {
        let z1 = z.select(1, 0);
        let z2 = z.select(1, 1);
        let w1 = (&z1 * (2.0 * PI / 4.0)).sin();
        match self {
            Target::U1 => {
                let r = z.square().sum_dim_intlist(1, false, z.kind()).sqrt();
                let ring = gauss_exponent(&(r - 2.0), 0.4) * -1.0;
                let modes = log_add_exp(
                    &gauss_exponent(&(&z1 - 2.0), 0.6),
                    &gauss_exponent(&(&z1 + 2.0), 0.6),
                );
                ring - modes
            }
            Target::U2 => gauss_exponent(&(&z2 - &w1), 0.4) * -1.0 + envelope(z),
            Target::U3 => {
                let w2 = gauss_exponent(&(&z1 - 1.0), 0.6).exp() * 3.0;
                let a = gauss_exponent(&(&z2 - &w1), 0.35);
                let b = gauss_exponent(&(&z2 - &w1 + w2), 0.35);
                -log_add_exp(&a, &b) + envelope(z)
            }
            Target::U4 => {
                let w3 = ((&z1 - 1.0) / 0.3).sigmoid() * 3.0;
                let a = gauss_exponent(&(&z2 - &w1), 0.4);
                let b = gauss_exponent(&(&z2 - &w1 + w3), 0.35);
                -log_add_exp(&a, &b) + envelope(z)
            }
        }
    }

    /// ln Z = ln ∫ exp(−U) over a grid that holds the mass: midpoint rule, 3000² cells on
    /// [−16, 16]² (a test checks that a finer or wider grid changes it by < 1e-4).
    pub fn log_z(&self) -> f64 {
        static CACHE: [OnceLock<f64>; 4] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        *CACHE[*self as usize].get_or_init(|| self.log_z_on(&Grid2d::square(-16.0, 16.0, 3000)))
    }

    pub fn log_z_on(&self, grid: &Grid2d) -> f64 {
        grid.log_integral(Device::Cpu, &mut |pts| -self.energy(pts))
    }

    /// The window the paper draws: [−4, 4]².
    pub fn window(&self) -> (f64, f64) {
        (-4.0, 4.0)
    }
}

/// E(z) = ½ (‖z‖₄ / 8)⁴ = ½ Σ z_i⁴ / 8⁴.
fn envelope(z: &Tensor) -> Tensor {
    z.pow_tensor_scalar(4).sum_dim_intlist(1, false, z.kind()) * (0.5 / 4096.0)
}
