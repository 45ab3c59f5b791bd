//! SVG charts of a comparison: pods over time, and the latency CDF.

use std::path::Path;

use plotters::prelude::*;

use crate::error::SimError;
use crate::report::Comparison;

/// One colour per policy, in report order.
const COLOURS: [RGBColor; 4] =
    [RGBColor(214, 39, 40), RGBColor(255, 127, 14), RGBColor(31, 119, 180), RGBColor(44, 160, 44)];

/// Writes `pods.svg` (pods alive over time, log scale) and `latency-cdf.svg` (share of answered
/// calls at or below each latency, log scale) into `dir`, which must exist.
pub fn write_charts(comparison: &Comparison, dir: &Path) -> Result<(), SimError> {
    let pods = dir.join("pods.svg");
    pods_chart(comparison, &pods).map_err(|reason| SimError::Chart { path: pods.clone(), reason })?;
    let cdf = dir.join("latency-cdf.svg");
    cdf_chart(comparison, &cdf).map_err(|reason| SimError::Chart { path: cdf.clone(), reason })?;
    Ok(())
}

fn pods_chart(comparison: &Comparison, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let end_s =
        comparison.policies.iter().flat_map(|p| p.timeline.last()).map(|t| t.t_s).fold(60.0, f64::max);
    let max_pods =
        comparison.policies.iter().flat_map(|p| p.timeline.iter()).map(|t| t.pods).max().unwrap_or(1).max(1)
            as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Pods over time: {}", comparison.workload), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end_s / 60.0, (0.5..max_pods * 1.5).log_scale())
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc("minutes").y_desc("pods (log scale)").draw().map_err(|e| e.to_string())?;
    for (i, p) in comparison.policies.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                p.timeline.iter().map(|t| (t.t_s / 60.0, (t.pods as f64).max(0.5))),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(p.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn cdf_chart(comparison: &Comparison, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let points = comparison.policies.iter().flat_map(|p| p.latency_cdf.iter().map(|&(ms, _)| ms));
    let (lo, hi) = points.fold((f64::MAX, 1.0_f64), |(lo, hi), ms| (lo.min(ms.max(0.01)), hi.max(ms)));
    let lo = if lo == f64::MAX { 0.01 } else { lo };
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("End-to-end latency CDF: {}", comparison.workload), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((lo..hi * 1.2).log_scale(), 0.0..1.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("latency, ms (log scale)")
        .y_desc("share of calls answered 200")
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, p) in comparison.policies.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                p.latency_cdf.iter().map(|&(ms, q)| (ms.max(lo), q)),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(p.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
