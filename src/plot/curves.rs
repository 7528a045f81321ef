//! Scalar curves of several runs on one chart: one colour and legend entry per run, axis
//! labels, a log-scale y axis where a curve spans decades, and dashed horizontal reference lines
//! (a paper's number beside the learning curves).
use super::{colour, drawing, label_font, tick, title_font};
use anyhow::{ensure, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

pub struct Curves {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// (legend name, points `(x, y)`) per curve; non-finite points are left out.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Horizontal reference lines (legend name, y), drawn dashed: e.g. a paper's number.
    pub lines: Vec<(String, f64)>,
    pub log_y: bool,
    pub size: (u32, u32),
}

impl Curves {
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Curves {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: vec![],
            lines: vec![],
            log_y: false,
            size: (900, 520),
        }
    }

    pub fn with_series(mut self, name: &str, points: Vec<(f64, f64)>) -> Self {
        self.series.push((name.into(), points));
        self
    }

    /// The points a curve draws: finite, and positive on a log axis.
    fn kept(&self, points: &[(f64, f64)]) -> Vec<(f64, f64)> {
        points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
            .collect()
    }

    /// True when most curves end above `mid` on the y axis.
    fn ends_high(&self, mid: f64) -> bool {
        let ends: Vec<f64> = self
            .series
            .iter()
            .filter_map(|(_, s)| self.kept(s).last().map(|p| p.1))
            .collect();
        2 * ends.iter().filter(|&&y| y > mid).count() > ends.len()
    }

    /// The range of the kept points, widened where it is empty.
    fn data_box(&self) -> Result<((f64, f64), (f64, f64))> {
        let points: Vec<(f64, f64)> = self.series.iter().flat_map(|(_, s)| self.kept(s)).collect();
        ensure!(
            !points.is_empty(),
            "no {}values to plot",
            if self.log_y {
                "positive finite "
            } else {
                "finite "
            }
        );
        let fold = |f: fn(&(f64, f64)) -> f64| {
            points
                .iter()
                .map(f)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(v), b.max(v))
                })
        };
        let (mut x, mut y) = (fold(|p| p.0), fold(|p| p.1));
        // Reference lines widen the y range, never the x range.
        for &(_, v) in &self.lines {
            if v.is_finite() && (!self.log_y || v > 0.0) {
                y = (y.0.min(v), y.1.max(v));
            }
        }
        if x.1 <= x.0 {
            x.1 = x.0 + 1.0;
        }
        if self.log_y {
            // Whole decades, so that the axis has at least two labelled ticks.
            y = (
                10f64.powf(y.0.log10().floor()),
                10f64.powf(y.1.log10().ceil()),
            );
            if y.1 <= y.0 {
                y.1 = y.0 * 10.0;
            }
        } else {
            let pad = if y.1 > y.0 { 0.03 * (y.1 - y.0) } else { 0.5 };
            y = (y.0 - pad, y.1 + pad);
        }
        Ok((x, y))
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let (x, y) = self.data_box()?;
        if self.log_y {
            let mid = (y.0 * y.1).sqrt();
            self.draw_on(root, x, (y.0..y.1).log_scale(), mid)
        } else {
            self.draw_on(root, x, y.0..y.1, (y.0 + y.1) / 2.0)
        }
    }

    /// `y_mid`: the middle of the y axis, to choose the legend's corner.
    fn draw_on<DB, Y>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x: (f64, f64),
        y_range: Y,
        y_mid: f64,
    ) -> Result<()>
    where
        DB: DrawingBackend,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, title_font())
            .margin(12)
            .margin_right(30)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d(x.0..x.1, y_range)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style(label_font())
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(drawing)?;
        for (i, (name, points)) in self.series.iter().enumerate() {
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(self.kept(points), c.stroke_width(2)))
                .map_err(drawing)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
        }
        for (i, (name, v)) in self.lines.iter().enumerate() {
            if !v.is_finite() || (self.log_y && *v <= 0.0) {
                continue;
            }
            // Shades of grey, apart from the curves' colours: black, then lighter.
            let shade = (i % 4) as u8 * 55;
            let c = RGBColor(shade, shade, shade);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x.0, *v), (x.1, *v)],
                    8,
                    5,
                    c.stroke_width(2),
                ))
                .map_err(drawing)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 8, y)], c.stroke_width(2))
                });
        }
        // Rising curves (an ELBO) end at the top right: keep the legend out of their way.
        let position = if self.ends_high(y_mid) {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        };
        super::draw_legend(&mut chart, position)
    }
}
