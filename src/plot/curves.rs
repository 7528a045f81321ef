//! Line plots of scalar curves (one colour per run) with numbered legend swatches and the axis
//! ranges written in a 3×5 pixel digit font, for readers who do not open TensorBoard.
use anyhow::{ensure, Result};
use image::{Rgb, RgbImage};

/// 3×5 glyphs (rows top to bottom, 3 bits each) for the characters numbers need.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        'e' => [0, 7, 7, 4, 7],
        '+' => [0, 2, 7, 2, 0],
        ' ' => [0, 0, 0, 0, 0],
        _ => return None,
    })
}

/// Writes `text` with its top-left corner at (x, y), each font pixel `scale` pixels wide.
pub fn text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: i64, colour: Rgb<u8>) {
    for (k, c) in text.chars().enumerate() {
        let Some(g) = glyph(c) else { continue };
        for (r, bits) in g.iter().enumerate() {
            for b in 0..3 {
                if bits & (4 >> b) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let (px, py) = (
                                x + (k as i64 * 4 + b) * scale + dx,
                                y + r as i64 * scale + dy,
                            );
                            if px >= 0
                                && py >= 0
                                && (px as u32) < img.width()
                                && (py as u32) < img.height()
                            {
                                img.put_pixel(px as u32, py as u32, colour);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: Rgb<u8>) {
    let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
    for i in 0..=n {
        let t = i as f64 / n as f64;
        let (x, y) = ((x0 + (x1 - x0) * t).round(), (y0 + (y1 - y0) * t).round());
        for (dx, dy) in [(0.0, 0.0), (0.0, 1.0)] {
            let (px, py) = (x + dx, y + dy);
            if px >= 0.0 && py >= 0.0 && (px as u32) < img.width() && (py as u32) < img.height() {
                img.put_pixel(px as u32, py as u32, c);
            }
        }
    }
}

/// Ten distinguishable colours (Tableau 10): runs in curves, digit classes in scatters.
const COLOURS: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

pub fn colour(i: usize) -> Rgb<u8> {
    Rgb(COLOURS[i % COLOURS.len()])
}

fn label(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.2e}")
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// Curves `(step, value)` per run on one `width × height` canvas: run i is drawn in `colour(i)`
/// and numbered i + 1 in the legend; the y range (min, max) and the last step are written on
/// the axes.
pub fn curves_figure(series: &[Vec<(f64, f64)>], width: u32, height: u32) -> Result<RgbImage> {
    let (x0, x1, y0, y1) = data_box(series)?;
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let (left, right, top, bottom) = (
        80.0,
        20.0,
        20.0 + 14.0 * series.len().div_ceil(8) as f64,
        30.0,
    );
    let (w, h) = (width as f64 - left - right, height as f64 - top - bottom);
    let ink = Rgb([60, 60, 60]);
    draw_axes(&mut img, (left, top, w, h), (x0, x1, y0, y1), ink);
    let to_px = |(x, y): (f64, f64)| {
        (
            left + (x - x0) / (x1 - x0) * w,
            top + (y1 - y) / (y1 - y0) * h,
        )
    };
    for (i, s) in series.iter().enumerate() {
        let c = colour(i);
        let pts: Vec<(f64, f64)> = s
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|p| to_px(*p))
            .collect();
        for pair in pts.windows(2) {
            line(&mut img, pair[0], pair[1], c);
        }
        // Legend: a swatch and the run's number.
        let (lx, ly) = (left + 90.0 * (i % 8) as f64, 6.0 + 14.0 * (i / 8) as f64);
        for dy in 0..3 {
            let y = ly + 4.0 + dy as f64;
            line(&mut img, (lx, y), (lx + 20.0, y), c);
        }
        text(
            &mut img,
            lx as i64 + 26,
            ly as i64,
            &(i + 1).to_string(),
            2,
            ink,
        );
    }
    Ok(img)
}

/// The range of the finite points: (x0, x1, y0, y1), widened where it is empty.
fn data_box(series: &[Vec<(f64, f64)>]) -> Result<(f64, f64, f64, f64)> {
    let points: Vec<&(f64, f64)> = series
        .iter()
        .flatten()
        .filter(|(_, v)| v.is_finite())
        .collect();
    ensure!(!points.is_empty(), "no finite values to plot");
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, y) in &points {
        (x0, x1, y0, y1) = (x0.min(*x), x1.max(*x), y0.min(*y), y1.max(*y));
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        (y0, y1) = (y0 - 0.5, y1 + 0.5);
    }
    Ok((x0, x1, y0, y1))
}

/// Grid, axes and the range labels of the plot area `(left, top, w, h)`.
fn draw_axes(
    img: &mut RgbImage,
    (left, top, w, h): (f64, f64, f64, f64),
    (x0, x1, y0, y1): (f64, f64, f64, f64),
    ink: Rgb<u8>,
) {
    let grey = Rgb([225, 225, 225]);
    for k in 0..=4 {
        let y = top + h * k as f64 / 4.0;
        line(img, (left, y), (left + w, y), grey);
        let x = left + w * k as f64 / 4.0;
        line(img, (x, top), (x, top + h), grey);
    }
    line(img, (left, top + h), (left + w, top + h), ink);
    line(img, (left, top), (left, top + h), ink);
    text(img, 4, top as i64, &label(y1), 2, ink);
    text(img, 4, (top + h) as i64 - 10, &label(y0), 2, ink);
    text(img, left as i64, (top + h) as i64 + 8, &label(x0), 2, ink);
    let xl = label(x1);
    let x = (left + w) as i64 - 8 * xl.len() as i64;
    text(img, x, (top + h) as i64 + 8, &xl, 2, ink);
}
