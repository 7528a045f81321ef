//! PNG figures: density images on a grid (Rezende & Mohamed 2015, Fig. 1 style), sample scatters, and their
//! overlay. Pixels only: no axes or text, windows are stated in file names and docs.
pub mod curves;
pub mod images;

use crate::grid::Grid2d;
use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use std::path::Path;
use tch::{Device, Tensor};

/// Viridis, sampled at 9 points and linearly interpolated.
const VIRIDIS: [[f64; 3]; 9] = [
    [68.0, 1.0, 84.0],
    [71.0, 44.0, 122.0],
    [59.0, 81.0, 139.0],
    [44.0, 113.0, 142.0],
    [33.0, 144.0, 141.0],
    [39.0, 173.0, 129.0],
    [92.0, 200.0, 99.0],
    [170.0, 220.0, 50.0],
    [253.0, 231.0, 37.0],
];

/// A tensor's values as float64, row-major, on the CPU.
fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(
        t.to_device(Device::Cpu)
            .to_kind(tch::Kind::Double)
            .flatten(0, -1),
    )
    .unwrap_or_default()
}

/// Colour for t ∈ [0, 1].
pub fn colormap(t: f64) -> Rgb<u8> {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let c = |k: usize| (VIRIDIS[i][k] * (1.0 - f) + VIRIDIS[i + 1][k] * f).round() as u8;
    Rgb([c(0), c(1), c(2)])
}

/// A `[ny, nx]` grid of log-densities (row 0 = lowest y) as an image, density scaled to its
/// maximum; the image's top row is the largest y.
pub fn log_density_image(log_p: &Tensor) -> RgbImage {
    let size = log_p.size();
    let (ny, nx) = (size[0] as u32, size[1] as u32);
    let p = log_p
        .to_device(Device::Cpu)
        .to_kind(tch::Kind::Double)
        .nan_to_num(f64::NEG_INFINITY, None, None)
        .exp();
    let max = p.max().double_value(&[]).max(1e-300);
    let values = values(&(p / max));
    RgbImage::from_fn(nx, ny, |x, y| {
        let row = (ny - 1 - y) as usize;
        colormap(
            values
                .get(row * nx as usize + x as usize)
                .copied()
                .unwrap_or(0.0),
        )
    })
}

/// Evaluates `log_p` on an `n × n` grid over `[lo, hi]²` and draws it.
pub fn density_figure(
    lo: f64,
    hi: f64,
    n: usize,
    device: Device,
    log_p: &mut dyn FnMut(&Tensor) -> Tensor,
) -> RgbImage {
    let grid = Grid2d::square(lo, hi, n);
    log_density_image(&grid.evaluate(device, log_p))
}

/// A 2-D histogram of `points: [n, 2]` over `[lo, hi]²` with `n × n` bins, drawn like a density.
pub fn histogram_figure(points: &Tensor, lo: f64, hi: f64, n: usize) -> RgbImage {
    let mut counts = vec![0.0f64; n * n];
    for p in values(points).chunks_exact(2) {
        let ix = ((p[0] - lo) / (hi - lo) * n as f64).floor();
        let iy = ((p[1] - lo) / (hi - lo) * n as f64).floor();
        if ix >= 0.0 && iy >= 0.0 && (ix as usize) < n && (iy as usize) < n {
            counts[iy as usize * n + ix as usize] += 1.0;
        }
    }
    log_density_image(
        &Tensor::from_slice(&counts)
            .reshape([n as i64, n as i64])
            .log(),
    )
}

/// Draws `points: [n, 2]` (in window `[lo, hi]²`) as small white dots on `img`.
pub fn overlay_points(img: &mut RgbImage, points: &Tensor, lo: f64, hi: f64) {
    let pts = values(points);
    let (w, h) = (img.width() as f64, img.height() as f64);
    for p in pts.chunks_exact(2) {
        let px = (p[0] - lo) / (hi - lo) * w;
        let py = h - (p[1] - lo) / (hi - lo) * h;
        if px >= 0.0 && py >= 0.0 && px < w && py < h {
            img.put_pixel(px as u32, py as u32, Rgb([255, 255, 255]));
        }
    }
}

/// Places images side by side with a 4-pixel gap.
pub fn hstack(images: &[RgbImage]) -> RgbImage {
    let gap = 4;
    let h = images.iter().map(|i| i.height()).max().unwrap_or(0);
    let w =
        images.iter().map(|i| i.width()).sum::<u32>() + gap * images.len().saturating_sub(1) as u32;
    let mut out = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let mut x0 = 0;
    for img in images {
        image::imageops::replace(&mut out, img, x0 as i64, 0);
        x0 += img.width() + gap;
    }
    out
}

pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .context("encoding PNG")?;
    Ok(buf.into_inner())
}

/// Writes a PNG atomically (temporary file, then rename).
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    crate::experiment::rundir::write_atomic(path, &png_bytes(img)?)
}
