//! Midpoint-rule integration over 2-D grids: ln Z of the toy targets, the "density integrates to
//! 1" bijector check, and density images all evaluate a log-density on grid cells.
use tch::{Device, Kind, Tensor};

/// A rectangular grid given by its cell edges along each axis (uniform or not).
#[derive(Clone, Debug)]
pub struct Grid2d {
    pub x_edges: Vec<f64>,
    pub y_edges: Vec<f64>,
}

impl Grid2d {
    /// `n × n` equal cells over `[lo, hi]²`.
    pub fn square(lo: f64, hi: f64, n: usize) -> Self {
        let edges: Vec<f64> = (0..=n)
            .map(|i| lo + (hi - lo) * i as f64 / n as f64)
            .collect();
        Grid2d {
            x_edges: edges.clone(),
            y_edges: edges,
        }
    }

    /// `n` equal cells per axis over `[x_lo, x_hi] × [y_lo, y_hi]`.
    pub fn rect(x: (f64, f64), y: (f64, f64), n: usize) -> Self {
        let lin = |lo: f64, hi: f64| {
            (0..=n)
                .map(|i| lo + (hi - lo) * i as f64 / n as f64)
                .collect()
        };
        Grid2d {
            x_edges: lin(x.0, x.1),
            y_edges: lin(y.0, y.1),
        }
    }

    pub fn nx(&self) -> usize {
        self.x_edges.len() - 1
    }

    pub fn ny(&self) -> usize {
        self.y_edges.len() - 1
    }

    fn mids(edges: &[f64]) -> Vec<f64> {
        edges.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect()
    }

    fn widths(edges: &[f64]) -> Vec<f64> {
        edges.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Cell midpoints of rows `row_lo..row_hi` (y index), x fastest: `[rows · nx, 2]`, float64.
    pub fn midpoints_rows(&self, row_lo: usize, row_hi: usize) -> Tensor {
        let xs = Tensor::from_slice(&Self::mids(&self.x_edges));
        let ys = Tensor::from_slice(&Self::mids(&self.y_edges)[row_lo..row_hi]);
        let grid = Tensor::meshgrid_indexing(&[&ys, &xs], "ij");
        Tensor::stack(&[grid[1].flatten(0, -1), grid[0].flatten(0, -1)], 1)
    }

    /// ln of each cell's area for rows `row_lo..row_hi`, x fastest.
    fn log_areas_rows(&self, row_lo: usize, row_hi: usize) -> Tensor {
        let wx = Tensor::from_slice(&Self::widths(&self.x_edges)).log();
        let wy = Tensor::from_slice(&Self::widths(&self.y_edges)[row_lo..row_hi]).log();
        (wy.unsqueeze(1) + wx.unsqueeze(0)).flatten(0, -1)
    }

    /// Evaluates `log_f` (points `[n, 2]` float64 on `device` → `[n]`) on every cell midpoint,
    /// in chunks of rows so memory stays bounded. Returns `[ny, nx]` on the CPU, float64.
    pub fn evaluate(&self, device: Device, log_f: &mut dyn FnMut(&Tensor) -> Tensor) -> Tensor {
        let rows_per_chunk = (1_000_000 / self.nx()).max(1);
        let mut out = Vec::new();
        let mut row = 0;
        while row < self.ny() {
            let hi = (row + rows_per_chunk).min(self.ny());
            let pts = self.midpoints_rows(row, hi).to_device(device);
            let vals = tch::no_grad(|| log_f(&pts))
                .to_device(Device::Cpu)
                .to_kind(Kind::Double);
            out.push(vals.reshape([(hi - row) as i64, self.nx() as i64]));
            row = hi;
        }
        Tensor::cat(&out, 0)
    }

    /// ln ∫ exp(log_f) by the midpoint rule, with log-sum-exp for stability.
    pub fn log_integral(&self, device: Device, log_f: &mut dyn FnMut(&Tensor) -> Tensor) -> f64 {
        let vals = self.evaluate(device, log_f).flatten(0, -1);
        let areas = self.log_areas_rows(0, self.ny());
        let total = vals + areas;
        // NaN (outside a bijector's range) and -inf carry no mass.
        let total = total.nan_to_num(f64::NEG_INFINITY, None, None);
        total.logsumexp([0], false).double_value(&[])
    }
}

impl Grid2d {
    /// A grid adapted to where `samples: [n, 2]` put their mass: per axis, the union of equal
    /// cells over the padded sample range and cells between sample quantiles, so the midpoint
    /// rule is fine where the density is high and still covers the tails.
    pub fn from_samples(samples: &Tensor, cells: usize) -> Self {
        let axis = |j: i64| -> Vec<f64> {
            let mut v: Vec<f64> = Vec::<f64>::try_from(
                samples
                    .select(1, j)
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Double),
            )
            .unwrap_or_default();
            v.retain(|x| x.is_finite());
            v.sort_by(|a, b| a.total_cmp(b));
            if v.is_empty() {
                return (0..=cells)
                    .map(|i| -5.0 + 10.0 * i as f64 / cells as f64)
                    .collect();
            }
            let (lo, hi) = (v[0], v[v.len() - 1]);
            let pad = 0.5 * (hi - lo).max(1e-3);
            let (lo, hi) = (lo - pad, hi + pad);
            let mut edges: Vec<f64> = (0..=cells)
                .map(|i| lo + (hi - lo) * i as f64 / cells as f64)
                .collect();
            edges.extend((1..cells).map(|i| v[(i * (v.len() - 1)) / cells]));
            edges.sort_by(|a, b| a.total_cmp(b));
            edges.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
            edges
        };
        Grid2d {
            x_edges: axis(0),
            y_edges: axis(1),
        }
    }
}
