//! Figures drawn with `plotters`: density heatmaps with axes in data units and a colour bar
//! (Rezende & Mohamed 2015, Fig. 1 style), rows of such panels, curves with named legends,
//! labelled latent scatters and titled image grids. Every figure renders as PNG (also what
//! TensorBoard receives) or SVG.
pub mod curves;
pub mod heatmap;
pub mod images;

pub use curves::Curves;
pub use heatmap::{Heatmap, Scale};
pub use images::{ImageGrid, Scatter};

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The file format of a figure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Png,
    Svg,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }
}

/// One figure of any kind flowlab draws.
pub enum Figure {
    Heatmap(Heatmap),
    /// Heatmaps side by side, each with its own title, axes and colour bar.
    Row(Vec<Heatmap>),
    Curves(Curves),
    Scatter(Scatter),
    Grid(ImageGrid),
}

impl From<Heatmap> for Figure {
    fn from(h: Heatmap) -> Self {
        Figure::Heatmap(h)
    }
}

impl From<Curves> for Figure {
    fn from(c: Curves) -> Self {
        Figure::Curves(c)
    }
}

impl From<Scatter> for Figure {
    fn from(s: Scatter) -> Self {
        Figure::Scatter(s)
    }
}

impl From<ImageGrid> for Figure {
    fn from(g: ImageGrid) -> Self {
        Figure::Grid(g)
    }
}

/// Turns a plotters drawing error (generic over the backend) into an `anyhow` error.
pub(crate) fn drawing<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a figure: {e}")
}

/// Title and label fonts: DejaVu Sans, embedded, registered once as plotters' "sans-serif".
fn register_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let bytes = match style {
                FontStyle::Bold => dejavu::sans::bold(),
                _ => dejavu::sans::regular(),
            };
            // The embedded font is known to parse; a failure would show as missing text.
            let _ = plotters::style::register_font("sans-serif", style, bytes);
        }
    });
}

pub(crate) fn title_font() -> TextStyle<'static> {
    ("sans-serif", 18).into_font().style(FontStyle::Bold).into()
}

pub(crate) fn label_font() -> TextStyle<'static> {
    ("sans-serif", 14).into()
}

impl Figure {
    /// Width and height in pixels (SVG user units).
    pub fn size(&self) -> (u32, u32) {
        match self {
            Figure::Heatmap(h) => h.size,
            Figure::Row(panels) => panels
                .iter()
                .fold((0, 0), |(w, h), p| (w + p.size.0, h.max(p.size.1))),
            Figure::Curves(c) => c.size,
            Figure::Scatter(s) => s.size,
            Figure::Grid(g) => g.size(),
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(drawing)?;
        match self {
            Figure::Heatmap(h) => h.draw(root),
            Figure::Row(panels) => {
                let mut rest = root.clone();
                for p in panels {
                    let (left, right) = rest.split_horizontally(p.size.0);
                    p.draw(&left)?;
                    rest = right;
                }
                Ok(())
            }
            Figure::Curves(c) => c.draw(root),
            Figure::Scatter(s) => s.draw(root),
            Figure::Grid(g) => g.draw(root),
        }
    }

    /// The encoded file contents.
    pub fn render(&self, format: Format) -> Result<Vec<u8>> {
        register_fonts();
        let (w, h) = self.size();
        match format {
            Format::Png => {
                let mut buf = vec![0u8; (w * h * 3) as usize];
                {
                    let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
                    self.draw(&root)?;
                    root.present().map_err(drawing)?;
                }
                let img = image::RgbImage::from_raw(w, h, buf)
                    .context("figure buffer has the wrong size")?;
                png_bytes(&img)
            }
            Format::Svg => {
                let mut svg = String::new();
                {
                    let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                    self.draw(&root)?;
                    root.present().map_err(drawing)?;
                }
                Ok(svg.into_bytes())
            }
        }
    }

    /// Writes the figure atomically to `path` (extension and all); returns the path.
    pub fn save(&self, path: &Path, format: Format) -> Result<PathBuf> {
        let path = path.to_path_buf();
        let bytes = self
            .render(format)
            .with_context(|| format!("drawing {}", path.display()))?;
        crate::experiment::rundir::write_atomic(&path, &bytes)?;
        Ok(path)
    }
}

/// `path` with the format's extension appended (`samples_t0.5` → `samples_t0.5.png`).
pub fn with_extension(path: &Path, format: Format) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".");
    name.push(format.extension());
    PathBuf::from(name)
}

/// The format named by a path's extension (`.png` or `.svg`), or `default` without one.
pub fn format_of(path: &Path, default: Format) -> Result<Format> {
    match path.extension().and_then(|e| e.to_str()) {
        None => Ok(default),
        Some(e) if e.eq_ignore_ascii_case("png") => Ok(Format::Png),
        Some(e) if e.eq_ignore_ascii_case("svg") => Ok(Format::Svg),
        Some(e) => Err(anyhow!(
            "{}: figures are written as .png or .svg, not .{e}",
            path.display()
        )),
    }
}

/// The legend of a chart's labelled series, in the given corner.
pub(crate) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(label_font())
        .draw()
        .map_err(drawing)
}

/// A tick label: short, without trailing zeros, in scientific notation far from 1.
pub(crate) fn tick(v: &f64) -> String {
    let v = *v;
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e5 || v.abs() < 1e-3 {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0')
            .trim_end_matches('.')
            .replace('-', "−")
    }
}

/// Ten distinguishable colours (Tableau 10): runs in curves, digit classes in scatters.
const COLOURS: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

pub fn colour(i: usize) -> RGBColor {
    let (r, g, b) = COLOURS[i % COLOURS.len()];
    RGBColor(r, g, b)
}

pub fn png_bytes(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .context("encoding PNG")?;
    Ok(buf.into_inner())
}

/// A tensor's values as float64, row-major, on the CPU.
pub(crate) fn values(t: &tch::Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(
        t.detach()
            .to_device(tch::Device::Cpu)
            .to_kind(tch::Kind::Double)
            .flatten(0, -1),
    )?)
}
