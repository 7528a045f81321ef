//! Every figure kind renders as PNG and SVG: the PNG decodes at the figure's size and shows the
//! data where it should, the SVG is well-formed with its title, axis labels and legend as text.
mod common;
use common::{flowlab, scratch, stderr, tiny_config, write};
use flowlab::plot::{Curves, Figure, Format, Heatmap, ImageGrid, Scale, Scatter};
use tch::{Device, Kind, Tensor};

fn gaussian(title: &str) -> Heatmap {
    Heatmap::of_log_density(
        title,
        "density p(x)",
        (-3.0, 3.0),
        120,
        Device::Cpu,
        &mut |p| {
            -(p * p).sum_dim_intlist(1, false, Kind::Double) / 2.0
                - (2.0 * std::f64::consts::PI).ln()
        },
    )
    .unwrap()
}

/// The trimmed text nodes of an SVG document.
fn svg_texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("SVG is not XML: {e}"));
    doc.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn figures() -> Vec<(&'static str, Figure, Vec<&'static str>)> {
    let points = Tensor::randn([300, 2], (Kind::Double, Device::Cpu));
    let labels = Tensor::arange(300, (Kind::Int64, Device::Cpu)).remainder(10);
    let digits = Tensor::rand([12, 28 * 28], (Kind::Float, Device::Cpu));
    let rising: Vec<(f64, f64)> = (1..=50)
        .map(|i| (i as f64 * 10.0, (i as f64).exp()))
        .collect();
    vec![
        (
            "heatmap",
            gaussian("standard normal").into(),
            vec!["standard normal", "density p(x)", "x₁", "x₂"],
        ),
        (
            "heatmap with points and log scale",
            gaussian("with samples")
                .with_scale(Scale::LogDensity)
                .with_points(&points)
                .unwrap()
                .into(),
            vec!["with samples"],
        ),
        (
            "row of panels",
            Figure::Row(vec![gaussian("left panel"), gaussian("right panel")]),
            vec!["left panel", "right panel"],
        ),
        (
            "histogram",
            Heatmap::histogram("samples histogram", &points, (-4.0, 4.0), 40)
                .unwrap()
                .into(),
            vec!["samples histogram", "empirical density"],
        ),
        (
            "curves",
            Curves::new("loss curves", "step", "train/loss")
                .with_series("planar-k8", vec![(0.0, 3.0), (100.0, 2.0), (200.0, 1.5)])
                .with_series(
                    "radial-k8",
                    vec![(0.0, 3.5), (100.0, f64::NAN), (200.0, 2.5)],
                )
                .into(),
            vec![
                "loss curves",
                "step",
                "train/loss",
                "planar-k8",
                "radial-k8",
            ],
        ),
        (
            "log-scale curves",
            {
                let mut c = Curves::new("decades", "step", "kl").with_series("run", rising);
                c.log_y = true;
                c.into()
            },
            vec!["decades", "run"],
        ),
        (
            "scatter",
            Scatter::new("latent codes", &points, &labels, "digit")
                .unwrap()
                .into(),
            vec!["latent codes", "digit 0", "digit 9", "z₁"],
        ),
        (
            "image grid",
            ImageGrid::new(
                "prior samples",
                flowlab::plot::images::tile(&digits, 28, 28, 6).unwrap(),
            )
            .into(),
            vec!["prior samples"],
        ),
    ]
}

#[test]
fn every_figure_kind_renders_as_png_and_svg() {
    for (kind, fig, texts) in figures() {
        let (w, h) = fig.size();
        let png = fig
            .render(Format::Png)
            .unwrap_or_else(|e| panic!("{kind}: {e:#}"));
        let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
            .unwrap_or_else(|e| panic!("{kind}: PNG does not decode: {e}"))
            .to_rgb8();
        assert_eq!(img.dimensions(), (w, h), "{kind}");
        let distinct: std::collections::HashSet<_> = img.pixels().map(|p| p.0).collect();
        assert!(
            distinct.len() > 20,
            "{kind}: only {} colours, nothing drawn?",
            distinct.len()
        );

        let svg = String::from_utf8(fig.render(Format::Svg).unwrap()).unwrap();
        let doc = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{kind}: SVG is not XML: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg", "{kind}");
        assert_eq!(
            doc.root_element().attribute("width"),
            Some(w.to_string().as_str()),
            "{kind}"
        );
        let text = svg_texts(&svg);
        for t in texts {
            assert!(
                text.iter().any(|s| s.contains(t)),
                "{kind}: no text {t:?} in the SVG"
            );
        }
    }
}

#[test]
fn a_density_is_drawn_where_it_lives_and_in_data_units() {
    let fig: Figure = gaussian("standard normal").into();
    let img = image::load_from_memory(&fig.render(Format::Png).unwrap())
        .unwrap()
        .to_rgb8();
    // The plot area's centre is the mode (viridis' yellow end), its corners the tails (purple).
    let (w, h) = img.dimensions();
    let centre = img.get_pixel((w - 95) / 2 + 20, h / 2 - 5).0;
    assert!(
        centre[0] > 180 && centre[1] > 180 && centre[2] < 120,
        "centre {centre:?}"
    );
    let corner = img.get_pixel(80, 60).0;
    assert!(corner[0] < 100 && corner[2] > 60, "corner {corner:?}");
    // The colour bar's top tick is the maximum density 1/(2π) ≈ 0.159, so "0.15" is labelled.
    let svg = String::from_utf8(fig.render(Format::Svg).unwrap()).unwrap();
    let text = svg_texts(&svg);
    assert!(
        text.iter().any(|t| t == "0.15"),
        "colour bar ticks in density units: {text:?}"
    );
    assert!(
        text.iter().any(|t| t == "−3"),
        "axis ticks in data units: {text:?}"
    );
    assert!(
        svg.contains("<image"),
        "the density is embedded as an image"
    );
}

#[test]
fn bad_figure_requests_are_refused() {
    let mut c = Curves::new("t", "step", "v").with_series("a", vec![(0.0, -1.0), (1.0, 0.0)]);
    c.log_y = true;
    let e = Figure::from(c).render(Format::Png).unwrap_err();
    assert!(format!("{e:#}").contains("positive"), "{e:#}");
    let e = flowlab::plot::format_of(std::path::Path::new("fig.jpg"), Format::Png).unwrap_err();
    assert!(e.to_string().contains(".png or .svg"), "{e}");
}

#[test]
fn the_cli_writes_each_format_and_run_figures_follow_the_config() {
    let dir = scratch("figures_cli");
    let svg = dir.join("fig1.svg");
    let o = flowlab(&["plot", "fig1", "--out", svg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    roxmltree::Document::parse(&std::fs::read_to_string(&svg).unwrap()).unwrap();
    let o = flowlab(&[
        "plot",
        "target",
        "U2",
        "--out",
        dir.join("u2.svg").to_str().unwrap(),
        "--format",
        "png",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("wrong extension"),
        "{}",
        stderr(&o)
    );

    let cfg = tiny_config("svg-run", 2, 60).replace(
        r#""checkpoint_every": 100"#,
        r#""checkpoint_every": 100, "figure_format": "svg""#,
    );
    let path = write(&dir, "svg-run.json", &cfg);
    let o = flowlab(&[
        "run",
        path.to_str().unwrap(),
        "--out",
        dir.join("runs").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let figures = dir.join("runs/svg-run/figures");
    for stem in ["target", "fitted", "samples"] {
        let f = figures.join(format!("{stem}.svg"));
        roxmltree::Document::parse(&std::fs::read_to_string(&f).unwrap()).unwrap();
    }
    let run = dir.join("runs/svg-run");
    let o = flowlab(&["plot", "run", run.to_str().unwrap(), "--format", "png"]);
    assert!(o.status.success(), "{}", stderr(&o));
    image::open(figures.join("fitted.png")).unwrap();

    let out = dir.join("curves.png");
    let o = flowlab(&[
        "plot",
        "curves",
        run.to_str().unwrap(),
        "--tag",
        "train/kl",
        "--tag",
        "train/log_det",
        "--smooth",
        "0.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    image::open(&out).unwrap();
    let o = flowlab(&[
        "plot",
        "curves",
        run.to_str().unwrap(),
        "--tag",
        "val/nope",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("train/kl"),
        "lists the tags: {}",
        stderr(&o)
    );

    // A paper's number as a dashed reference line: in the legend, and inside the y axis even
    // far from the curves.
    let svg = dir.join("curves.svg");
    let o = flowlab(&[
        "plot",
        "curves",
        run.to_str().unwrap(),
        "--tag",
        "train/kl",
        "--hline",
        "-1000=published",
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let texts: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    assert!(texts.contains(&"published"), "legend: {texts:?}");
    let lowest_tick = texts
        .iter()
        .filter_map(|t| t.replace('−', "-").parse::<f64>().ok())
        .fold(f64::INFINITY, f64::min);
    assert!(
        lowest_tick <= -900.0,
        "y axis ends above the line: {texts:?}"
    );
    let o = flowlab(&[
        "plot",
        "curves",
        run.to_str().unwrap(),
        "--hline",
        "x=published",
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("`x` is not a number"),
        "{}",
        stderr(&o)
    );
}
