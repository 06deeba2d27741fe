//! PNG line charts for the benchmarks (`plotters`, text drawn with a TTF font read from
//! the system at run time: DejaVu Sans, or `$TOTESYS_CDC_CHART_FONT`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;

/// One line of a chart: its legend and its points.
pub struct Series {
    /// The legend.
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A chart of lines over one x axis.
pub struct Chart<'a> {
    /// The title, above the plot.
    pub title: &'a str,
    /// The x axis label.
    pub x: &'a str,
    /// The y axis label.
    pub y: &'a str,
    /// The lines.
    pub series: Vec<Series>,
}

const FONT_CANDIDATES: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers the font the charts are drawn with (once per process).
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let path: PathBuf = match std::env::var_os("TOTESYS_CDC_CHART_FONT") {
                Some(path) => path.into(),
                None => FONT_CANDIDATES
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.is_file())
                    .ok_or_else(|| {
                        "no DejaVuSans.ttf for the charts' text: install fonts-dejavu-core or \
                         set TOTESYS_CDC_CHART_FONT to a TTF file"
                            .to_owned()
                    })?,
            };
            let bytes = std::fs::read(&path)
                .map_err(|e| format!("cannot read the chart font {}: {e}", path.display()))?;
            // The font lives as long as the process (plotters keeps a 'static reference).
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{} is not a TTF font", path.display()))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// Draws `chart` into the PNG file `path` (1000×560).
pub fn draw(path: &Path, chart: &Chart) -> anyhow::Result<()> {
    register_font()?;
    let points = || chart.series.iter().flat_map(|s| s.points.iter());
    let x_max = points().map(|p| p.0).fold(0.0_f64, f64::max).max(1e-9);
    let y_max = points().map(|p| p.1).fold(0.0_f64, f64::max).max(1e-9) * 1.08;
    let root = BitMapBackend::new(path, (1000, 560)).into_drawing_area();
    let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(chart.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72);
    let mut ctx = builder
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| failed(&e))?;
    ctx.configure_mesh()
        .x_desc(chart.x)
        .y_desc(chart.y)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| failed(&e))?;
    for (i, series) in chart.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        ctx.draw_series(LineSeries::new(
            series.points.iter().copied(),
            colour.stroke_width(2),
        ))
        .map_err(|e| failed(&e))?
        .label(series.name.as_str())
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    ctx.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))?;
    Ok(())
}

/// Where the charts go: `$TOTESYS_CDC_CHARTS_DIR`, else `docs/charts` in the workspace.
pub fn charts_dir() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("TOTESYS_CDC_CHARTS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/charts"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
