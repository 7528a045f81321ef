//! Toy 2-D data sets of the density-estimation literature (FFJORD's `toy_data.py`, also used by
//! nflows and normflows), generated in Rust from a seed: moons, circles, rings, 8gaussians,
//! pinwheel, 2spirals, checkerboard. Recipes as in the FFJORD and neural-spline-flow papers' toy experiments (Grathwohl et al. 2019; Durkan et al. 2019).
pub use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;
use tch::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToyData {
    Moons,
    Circles,
    Rings,
    #[serde(rename = "8gaussians")]
    EightGaussians,
    Pinwheel,
    #[serde(rename = "2spirals")]
    TwoSpirals,
    Checkerboard,
}

fn linspace(n: usize, hi: f64, endpoint: bool) -> Vec<f64> {
    let div = if endpoint {
        (n.max(2) - 1) as f64
    } else {
        n as f64
    };
    (0..n).map(|i| hi * i as f64 / div).collect()
}

impl ToyData {
    /// `n` points, `[n, 2]` float32, shuffled.
    pub fn sample(&self, n: usize, seed: u64) -> Tensor {
        let mut rng = Rng::new(seed);
        let mut pts = match self {
            ToyData::Moons => moons(n, &mut rng),
            ToyData::Circles => circles(n, &mut rng),
            ToyData::Rings => rings(n, &mut rng),
            ToyData::EightGaussians => eight_gaussians(n, &mut rng),
            ToyData::Pinwheel => pinwheel(n, &mut rng),
            ToyData::TwoSpirals => two_spirals(n, &mut rng),
            ToyData::Checkerboard => checkerboard(n, &mut rng),
        };
        rng.shuffle(&mut pts);
        let flat: Vec<f32> = pts
            .iter()
            .flat_map(|p| [p[0] as f32, p[1] as f32])
            .collect();
        Tensor::from_slice(&flat).reshape([n as i64, 2])
    }
}

fn moons(n: usize, rng: &mut Rng) -> Vec<[f64; 2]> {
    let n_out = n / 2;
    let mut v: Vec<[f64; 2]> = linspace(n_out, PI, true)
        .into_iter()
        .map(|t| [t.cos(), t.sin()])
        .collect();
    v.extend(
        linspace(n - n_out, PI, true)
            .into_iter()
            .map(|t| [1.0 - t.cos(), 1.0 - t.sin() - 0.5]),
    );
    v.into_iter()
        .map(|[x, y]| {
            [
                (x + 0.1 * rng.normal()) * 2.0 - 1.0,
                (y + 0.1 * rng.normal()) * 2.0 - 0.2,
            ]
        })
        .collect()
}

fn circles(n: usize, rng: &mut Rng) -> Vec<[f64; 2]> {
    let n_out = n / 2;
    let mut v: Vec<[f64; 2]> = linspace(n_out, 2.0 * PI, false)
        .into_iter()
        .map(|t| [t.cos(), t.sin()])
        .collect();
    v.extend(
        linspace(n - n_out, 2.0 * PI, false)
            .into_iter()
            .map(|t| [0.5 * t.cos(), 0.5 * t.sin()]),
    );
    v.into_iter()
        .map(|[x, y]| {
            [
                (x + 0.08 * rng.normal()) * 3.0,
                (y + 0.08 * rng.normal()) * 3.0,
            ]
        })
        .collect()
}

fn rings(n: usize, rng: &mut Rng) -> Vec<[f64; 2]> {
    let radii = [1.0, 0.75, 0.5, 0.25];
    let mut v = Vec::with_capacity(n);
    for (k, r) in radii.iter().enumerate() {
        let m = n / 4 + usize::from(k < n % 4);
        v.extend(
            linspace(m, 2.0 * PI, false)
                .into_iter()
                .map(|t| [r * t.cos() * 3.0, r * t.sin() * 3.0]),
        );
    }
    v.into_iter()
        .map(|[x, y]| [x + 0.08 * rng.normal(), y + 0.08 * rng.normal()])
        .collect()
}

fn eight_gaussians(n: usize, rng: &mut Rng) -> Vec<[f64; 2]> {
    (0..n)
        .map(|_| {
            let a = rng.below(8) as f64 * PI / 4.0;
            let (cx, cy) = (4.0 * a.cos(), 4.0 * a.sin());
            [
                (cx + 0.5 * rng.normal()) / 1.414,
                (cy + 0.5 * rng.normal()) / 1.414,
            ]
        })
        .collect()
}

fn pinwheel(n: usize, rng: &mut Rng) -> Vec<[f64; 2]> {
    (0..n)
        .map(|i| {
            let arm = (i * 5 / n.max(1)).min(4) as f64;
            let f0 = 0.3 * rng.normal() + 1.0;
            let f1 = 0.1 * rng.normal();
            let angle = 2.0 * PI * arm / 5.0 + 0.25 * f0.exp();
            let (c, s) = (angle.cos(), angle.sin());
            [2.0 * (f0 * c + f1 * s), 2.0 * (-f0 * s + f1 * c)]
        })
        .collect()
}

fn two_spirals(n: usize, rng: &mut Rng) -> Vec<[f64; 2]> {
    (0..n)
        .map(|i| {
            let t = rng.uniform().sqrt() * 3.0 * PI;
            let x = -t.cos() * t + 0.5 * rng.uniform();
            let y = t.sin() * t + 0.5 * rng.uniform();
            let sign = if i < n / 2 { 1.0 } else { -1.0 };
            [
                sign * x / 3.0 + 0.1 * rng.normal(),
                sign * y / 3.0 + 0.1 * rng.normal(),
            ]
        })
        .collect()
}

fn checkerboard(n: usize, rng: &mut Rng) -> Vec<[f64; 2]> {
    (0..n)
        .map(|_| {
            let x1 = rng.uniform() * 4.0 - 2.0;
            let x2 = rng.uniform() - 2.0 * rng.below(2) as f64 + x1.floor().rem_euclid(2.0);
            [x1 * 2.0, x2 * 2.0]
        })
        .collect()
}
