//! Image grids (digits, reconstructions, latent sweeps) and a labelled 2-D scatter.
use anyhow::{ensure, Result};
use image::{Rgb, RgbImage};
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

/// Points `[n, 2]` coloured by `labels: [n]` (0–9) on a white square, the window fitted to the
/// points' range (plus 5%).
pub fn labelled_scatter(points: &Tensor, labels: &Tensor, size: u32) -> Result<RgbImage> {
    let p = Vec::<f64>::try_from(
        points
            .detach()
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Double)
            .flatten(0, -1),
    )?;
    let l = Vec::<i64>::try_from(labels.to_device(tch::Device::Cpu).to_kind(Kind::Int64))?;
    ensure!(
        p.len() == 2 * l.len(),
        "scatter: {} points but {} labels",
        p.len() / 2,
        l.len()
    );
    let axis = |j: usize| {
        let v: Vec<f64> = p.iter().skip(j).step_by(2).copied().collect();
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        let pad = 0.05 * (hi - lo).max(1e-6);
        (lo - pad, hi + pad)
    };
    let ((x0, x1), (y0, y1)) = (axis(0), axis(1));
    let mut img = RgbImage::from_pixel(size, size, Rgb([255, 255, 255]));
    let s = size as f64 - 1.0;
    for (i, &label) in l.iter().enumerate() {
        let c = super::curves::colour(label.rem_euclid(10) as usize).0;
        let px = ((p[2 * i] - x0) / (x1 - x0) * s).round() as i64;
        let py = ((y1 - p[2 * i + 1]) / (y1 - y0) * s).round() as i64;
        for (dx, dy) in [
            (0, 0),
            (1, 0),
            (0, 1),
            (-1, 0),
            (0, -1),
            (1, 1),
            (-1, -1),
            (1, -1),
            (-1, 1),
        ] {
            let (x, y) = (px + dx, py + dy);
            if (0..size as i64).contains(&x) && (0..size as i64).contains(&y) {
                img.put_pixel(x as u32, y as u32, Rgb(c));
            }
        }
    }
    Ok(img)
}
