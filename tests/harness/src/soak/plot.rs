//! The soak's picture: memory, counts and file descriptors over time, one panel each, with
//! a vertical line at every kill (red: the agent, orange: a monitor), drawn with plotters
//! into a bitmap and written as PNG.
//!
//! Text is drawn by plotters' pure-Rust `ab_glyph` path from the DejaVu Sans file of
//! Debian's `fonts-dejavu-core` ([`FONT_FILE`]): no system font library is needed.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::sample::Sample;
use super::verdict::KillReport;

/// The font the labels are drawn with (Debian package `fonts-dejavu-core`).
pub const FONT_FILE: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The picture's size in pixels.
const SIZE: (u32, u32) = (1600, 1500);

/// The font family name the charts ask for.
const FAMILY: &str = "sans-serif";

/// One line of a panel: its label and its value in a sample.
type Series<'a> = (&'a str, Box<dyn Fn(&Sample) -> f64 + 'a>);

/// Draws `samples` and `kills` into a PNG at `path`.
pub fn write_png(path: &Path, title: &str, samples: &[Sample], kills: &[KillReport]) -> anyhow::Result<()> {
    load_font()?;
    let (width, height) = SIZE;
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    draw(&mut pixels, title, samples, kills).map_err(|err| anyhow!("drawing the plot: {err}"))?;
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("writing the PNG header")?;
    writer.write_image_data(&pixels).context("writing the PNG")?;
    writer.finish().context("finishing the PNG")?;
    Ok(())
}

/// Registers [`FONT_FILE`] once per process (plotters keeps a `'static` reference).
fn load_font() -> anyhow::Result<()> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT_FILE)
                .map_err(|err| format!("reading {FONT_FILE} (install fonts-dejavu-core): {err}"))?;
            register_font(FAMILY, FontStyle::Normal, Vec::leak(bytes))
                .map_err(|_| format!("{FONT_FILE} is not a font plotters can read"))
        })
        .clone()
        .map_err(|err| anyhow!(err))
}

fn draw(
    pixels: &mut [u8],
    title: &str,
    samples: &[Sample],
    kills: &[KillReport],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(pixels, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, (FAMILY, 22))?;
    let panels = root.split_evenly((3, 1));
    let mib = |kib: u64| kib as f64 / 1024.0;
    let memory: Vec<Series<'_>> = vec![
        ("kubelet-lite RSS", Box::new(move |s: &Sample| mib(s.agent.rss_kib))),
        ("kubelet-lite PSS", Box::new(move |s: &Sample| mib(s.agent.pss_kib))),
        (
            "monitors RSS (sum)",
            Box::new(move |s: &Sample| mib(s.monitors.rss_kib)),
        ),
        (
            "monitors PSS (sum)",
            Box::new(move |s: &Sample| mib(s.monitors.pss_kib)),
        ),
        (
            "redb store",
            Box::new(|s: &Sample| s.store_bytes as f64 / 1024.0 / 1024.0),
        ),
    ];
    let fields = samples.first().map(|s| s.counts.fields()).unwrap_or_default();
    let counts: Vec<Series<'_>> = fields
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| *name != "monitor_fds")
        .map(|(index, (name, _))| -> Series<'_> {
            (name, Box::new(move |s: &Sample| s.counts.fields()[index].1 as f64))
        })
        .collect();
    let fds: Vec<Series<'_>> = vec![
        ("kubelet-lite fds", Box::new(|s: &Sample| s.agent_fds as f64)),
        (
            "monitors' fds (sum)",
            Box::new(|s: &Sample| s.counts.monitor_fds as f64),
        ),
    ];
    panel(
        &panels[0],
        "memory (vertical lines: kill -9 of kubelet-lite in red, of a monitor in orange)",
        "MiB",
        &memory,
        samples,
        kills,
    )?;
    panel(
        &panels[1],
        "counts (must return to baseline)",
        "count",
        &counts,
        samples,
        kills,
    )?;
    panel(&panels[2], "open file descriptors", "fds", &fds, samples, kills)?;
    root.present()?;
    Ok(())
}

/// One chart: every series against minutes since the start, kills as vertical lines.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    unit: &str,
    series: &[Series<'_>],
    samples: &[Sample],
    kills: &[KillReport],
) -> Result<(), Box<dyn std::error::Error>> {
    let minutes = |s: &Sample| s.at.as_secs_f64() / 60.0;
    let x_max = samples.last().map(minutes).unwrap_or(1.0).max(1.0);
    let y_max = series
        .iter()
        .flat_map(|(_, value)| samples.iter().map(value))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .y_desc(unit)
        .label_style((FAMILY, 13))
        .draw()?;
    for kill in kills {
        let x = kill.at.as_secs_f64() / 60.0;
        let color = if kill.restart.is_some() {
            RED
        } else {
            RGBColor(255, 165, 0)
        };
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, 0.0), (x, y_max)],
            color.mix(0.6).stroke_width(2),
        )))?;
    }
    for (index, (label, value)) in series.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                samples.iter().map(|s| (minutes(s), value(s))),
                color.stroke_width(2),
            ))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
