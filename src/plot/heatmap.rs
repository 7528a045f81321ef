//! A 2-D density on a grid, drawn as an image with axes in data units and a colour bar with
//! its scale; optionally with points (samples) on top.
use super::{drawing, label_font, tick, title_font};
use crate::grid::Grid2d;
use anyhow::{ensure, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use tch::{Device, Tensor};

/// What the colours encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// exp(value), from 0 to its maximum.
    Density,
    /// The value itself (a log-density), over the top `LOG_RANGE` nats.
    LogDensity,
}

/// How far below its maximum a log-density colour bar reaches.
const LOG_RANGE: f64 = 20.0;

/// Colour-bar width, including its tick labels.
const BAR: u32 = 95;

pub struct Heatmap {
    pub title: String,
    /// The colour bar's label, e.g. "density p(x)".
    pub bar_label: String,
    /// Window `[x0, x1] × [y0, y1]`.
    pub x: (f64, f64),
    pub y: (f64, f64),
    /// `ny × nx` log-values, row 0 = lowest y.
    pub log_values: Vec<f64>,
    pub nx: usize,
    pub ny: usize,
    pub scale: Scale,
    /// Points drawn as small white dots.
    pub points: Vec<(f64, f64)>,
    pub size: (u32, u32),
}

impl Heatmap {
    /// A `[ny, nx]` tensor of log-values over the window.
    pub fn new(
        title: &str,
        bar_label: &str,
        (lo, hi): (f64, f64),
        log_values: &Tensor,
    ) -> Result<Self> {
        let s = log_values.size();
        ensure!(s.len() == 2, "a heatmap needs a [ny, nx] grid, got {s:?}");
        Ok(Heatmap {
            title: title.into(),
            bar_label: bar_label.into(),
            x: (lo, hi),
            y: (lo, hi),
            log_values: super::values(log_values)?,
            nx: s[1] as usize,
            ny: s[0] as usize,
            scale: Scale::Density,
            points: vec![],
            size: (560, 470),
        })
    }

    /// Evaluates `log_p` on an `n × n` grid over `[lo, hi]²`.
    pub fn of_log_density(
        title: &str,
        bar_label: &str,
        (lo, hi): (f64, f64),
        n: usize,
        device: Device,
        log_p: &mut dyn FnMut(&Tensor) -> Tensor,
    ) -> Result<Self> {
        let grid = Grid2d::square(lo, hi, n);
        Self::new(title, bar_label, (lo, hi), &grid.evaluate(device, log_p))
    }

    /// The empirical density of `points: [n, 2]` over `[lo, hi]²` in `bins × bins` cells
    /// (count / (n · cell area)).
    pub fn histogram(
        title: &str,
        points: &Tensor,
        (lo, hi): (f64, f64),
        bins: usize,
    ) -> Result<Self> {
        let xy = super::values(points)?;
        let mut counts = vec![0.0f64; bins * bins];
        for p in xy.chunks_exact(2) {
            let ix = ((p[0] - lo) / (hi - lo) * bins as f64).floor();
            let iy = ((p[1] - lo) / (hi - lo) * bins as f64).floor();
            if ix >= 0.0 && iy >= 0.0 && (ix as usize) < bins && (iy as usize) < bins {
                counts[iy as usize * bins + ix as usize] += 1.0;
            }
        }
        let cell = ((hi - lo) / bins as f64).powi(2);
        let n = (xy.len() / 2).max(1) as f64;
        let log: Vec<f64> = counts.iter().map(|c| (c / (n * cell)).ln()).collect();
        let grid = Tensor::from_slice(&log).reshape([bins as i64, bins as i64]);
        Self::new(title, "empirical density", (lo, hi), &grid)
    }

    pub fn with_scale(mut self, scale: Scale) -> Self {
        self.scale = scale;
        self
    }

    /// Adds `points: [n, 2]` as white dots.
    pub fn with_points(mut self, points: &Tensor) -> Result<Self> {
        let xy = super::values(points)?;
        self.points = xy.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        Ok(self)
    }

    /// Colour-scale values (density or log-density) and their range.
    fn shown(&self) -> (Vec<f64>, f64, f64) {
        let finite_max = self
            .log_values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(f64::NEG_INFINITY, f64::max);
        match self.scale {
            Scale::Density => {
                let v: Vec<f64> = self
                    .log_values
                    .iter()
                    .map(|l| if l.is_nan() { 0.0 } else { l.exp() })
                    .collect();
                let hi = if finite_max.is_finite() {
                    finite_max.exp()
                } else {
                    1.0
                };
                (v, 0.0, if hi > 0.0 { hi } else { 1.0 })
            }
            Scale::LogDensity => {
                let hi = if finite_max.is_finite() {
                    finite_max
                } else {
                    0.0
                };
                (self.log_values.clone(), hi - LOG_RANGE, hi)
            }
        }
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let (values, lo, hi) = self.shown();
        let t = |v: f64| {
            if v.is_finite() {
                ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let (main, bar) = area.split_horizontally(self.size.0.saturating_sub(BAR));
        let mut chart = ChartBuilder::on(&main)
            .caption(&self.title, title_font())
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(self.x.0..self.x.1, self.y.0..self.y.1)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("x₁")
            .y_desc("x₂")
            .label_style(label_font())
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw()
            .map_err(drawing)?;
        fill_plot_area(&mut chart, (self.x.0, self.y.1), |r, c, w, h| {
            // Image row r is the grid row at height 1 − (r + ½)/h.
            let gy = ((h - 1 - r) * self.ny / h.max(1)).min(self.ny - 1);
            let gx = (c * self.nx / w.max(1)).min(self.nx - 1);
            viridis(t(values[gy * self.nx + gx]))
        })?;
        let (x, y) = (self.x, self.y);
        let inside = self
            .points
            .iter()
            .filter(|(a, b)| (x.0..x.1).contains(a) && (y.0..y.1).contains(b));
        chart
            .draw_series(inside.map(|p| Circle::new(*p, 1, WHITE.filled())))
            .map_err(drawing)?;
        self.draw_bar(&bar, lo, hi)
    }

    /// A vertical colour bar with the scale's ticks.
    fn draw_bar<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        lo: f64,
        hi: f64,
    ) -> Result<()> {
        let mut chart = ChartBuilder::on(area)
            .margin_top(38)
            .margin_bottom(50)
            .margin_right(4)
            .set_label_area_size(LabelAreaPosition::Right, 52)
            .build_cartesian_2d(0.0..1.0, lo..hi)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_desc(self.bar_label.as_str())
            .y_labels(6)
            .y_label_formatter(&tick)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(drawing)?;
        fill_plot_area(&mut chart, (0.0, hi), |r, _, _, h| {
            viridis(1.0 - r as f64 / (h.max(2) - 1) as f64)
        })?;
        Ok(())
    }
}

/// Paints a chart's whole plotting area pixel by pixel: `colour(row, column, width, height)`;
/// `top_left` is the area's top-left corner in data coordinates.
fn fill_plot_area<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    top_left: (f64, f64),
    colour: impl Fn(usize, usize, usize, usize) -> RGBColor,
) -> Result<()> {
    let (px, py) = chart.plotting_area().get_pixel_range();
    let (w, h) = ((px.end - px.start) as usize, (py.end - py.start) as usize);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for r in 0..h {
        for c in 0..w {
            let RGBColor(r8, g8, b8) = colour(r, c, w, h);
            rgb.extend([r8, g8, b8]);
        }
    }
    if let Some(img) = BitMapElement::with_owned_buffer(top_left, (w as u32, h as u32), rgb) {
        chart.draw_series(std::iter::once(img)).map_err(drawing)?;
    }
    Ok(())
}

/// Viridis at t ∈ [0, 1].
fn viridis(t: f64) -> RGBColor {
    use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
    ViridisRGB.get_color_normalized(t, 0.0, 1.0)
}
