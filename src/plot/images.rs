//! Titled image grids (digits, reconstructions, latent sweeps) and a 2-D scatter of codes
//! coloured by class with a legend.
use super::{colour, drawing, label_font, tick, title_font};
use anyhow::{ensure, Result};
use image::{imageops, Rgb, RgbImage};
use plotters::coord::Shift;
use plotters::prelude::*;
use tch::{Kind, Tensor};

/// Tiles `images: [n, rows·cols]` (grey levels, clamped to [0, 1]) into a grid of `per_row`
/// columns with a 1-pixel dark gap. Tiles are white on black, as MNIST is drawn.
pub fn tile(images: &Tensor, rows: i64, cols: i64, per_row: i64) -> Result<RgbImage> {
    let n = images.size()[0];
    ensure!(n > 0 && per_row > 0, "nothing to tile");
    let grid_rows = (n + per_row - 1) / per_row;
    let pixels = Vec::<f32>::try_from(
        images
            .detach()
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Float)
            .clamp(0.0, 1.0)
            .flatten(0, -1),
    )?;
    let (w, h) = (per_row * (cols + 1) + 1, grid_rows * (rows + 1) + 1);
    let mut img = RgbImage::from_pixel(w as u32, h as u32, Rgb([40, 40, 60]));
    for k in 0..n {
        let (gy, gx) = (k / per_row, k % per_row);
        for r in 0..rows {
            for c in 0..cols {
                let v = (pixels[(k * rows * cols + r * cols + c) as usize] * 255.0).round() as u8;
                let (x, y) = (gx * (cols + 1) + 1 + c, gy * (rows + 1) + 1 + r);
                img.put_pixel(x as u32, y as u32, Rgb([v, v, v]));
            }
        }
    }
    Ok(img)
}

/// Height of a grid's title band.
const TITLE_BAND: u32 = 34;

/// An image (a tiled grid) under a title, enlarged by whole pixels to at least 360 wide.
pub struct ImageGrid {
    pub title: String,
    pub image: RgbImage,
}

impl ImageGrid {
    pub fn new(title: &str, image: RgbImage) -> Self {
        ImageGrid {
            title: title.into(),
            image,
        }
    }

    fn zoom(&self) -> u32 {
        360u32.div_ceil(self.image.width().max(1)).clamp(1, 8)
    }

    pub fn size(&self) -> (u32, u32) {
        let z = self.zoom();
        // Room for the title too (about 10 pixels per character at 18 points).
        let title = 10 * self.title.chars().count() as u32;
        (
            (self.image.width() * z).max(title) + 16,
            self.image.height() * z + TITLE_BAND + 8,
        )
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let z = self.zoom();
        let big = imageops::resize(
            &self.image,
            self.image.width() * z,
            self.image.height() * z,
            imageops::FilterType::Nearest,
        );
        let area = root.titled(&self.title, title_font()).map_err(drawing)?;
        let x0 = (self.size().0 - big.width()) as i32 / 2;
        let (w, h) = big.dimensions();
        if let Some(el) = BitMapElement::with_owned_buffer((x0, 4), (w, h), big.into_raw()) {
            area.draw(&el).map_err(drawing)?;
        }
        Ok(())
    }
}

/// Points in 2-D coloured by an integer label (0–9), one legend entry per label present.
pub struct Scatter {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<(f64, f64)>,
    pub labels: Vec<i64>,
    /// Legend text of label k is `format!("{legend} {k}")`.
    pub legend: String,
    pub size: (u32, u32),
}

impl Scatter {
    /// `points: [n, 2]` with `labels: [n]`.
    pub fn new(title: &str, points: &Tensor, labels: &Tensor, legend: &str) -> Result<Self> {
        let p = super::values(points)?;
        let labels = Vec::<i64>::try_from(labels.to_device(tch::Device::Cpu).to_kind(Kind::Int64))?;
        ensure!(
            p.len() == 2 * labels.len(),
            "scatter: {} points but {} labels",
            p.len() / 2,
            labels.len()
        );
        Ok(Scatter {
            title: title.into(),
            x_label: "z₁".into(),
            y_label: "z₂".into(),
            points: p.chunks_exact(2).map(|c| (c[0], c[1])).collect(),
            labels,
            legend: legend.into(),
            size: (620, 560),
        })
    }

    /// The points' range, plus 5%.
    fn window(&self, j: usize) -> (f64, f64) {
        let v = self
            .points
            .iter()
            .map(|p| if j == 0 { p.0 } else { p.1 })
            .filter(|v| v.is_finite());
        let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
        if !lo.is_finite() {
            return (-1.0, 1.0);
        }
        let pad = 0.05 * (hi - lo).max(1e-6);
        (lo - pad, hi + pad)
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let (x, y) = (self.window(0), self.window(1));
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, title_font())
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(x.0..x.1, y.0..y.1)
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
        let mut classes: Vec<i64> = self.labels.clone();
        classes.sort_unstable();
        classes.dedup();
        for k in classes {
            let c = colour(k.rem_euclid(10) as usize);
            let pts = self
                .points
                .iter()
                .zip(&self.labels)
                .filter(|(_, l)| **l == k)
                .map(|(p, _)| Circle::new(*p, 2, c.filled()));
            chart
                .draw_series(pts)
                .map_err(drawing)?
                .label(format!("{} {k}", self.legend))
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
        super::draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}
