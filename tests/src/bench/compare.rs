//! `compare`: runs one scenario against Switchboard and each peer in turn
//! (each run in its own child process, starting and stopping its own
//! servers), then prints the headline figures side by side with
//! Switchboard / peer ratios (and a summary line naming the JSON file) and
//! writes every report and ratio as JSON; `scripts/bench-chart.py` draws
//! a broadcast comparison from that file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use super::cli::Compare;
use super::peers::System;

/// Whether a larger figure is the better one.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
enum Better {
    Higher,
    Lower,
}

/// One compared figure: its name, where it is in a report, and which way
/// is better.
struct Figure {
    name: String,
    path: String,
    better: Better,
    /// Multiplies the report's value (e.g. a share into percent).
    scale: f64,
}

impl Figure {
    fn new(name: impl Into<String>, path: impl Into<String>, better: Better) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            better,
            scale: 1.0,
        }
    }
}

/// A row of the table.
#[derive(Debug, Serialize)]
struct Row {
    figure: String,
    better: Better,
    values: BTreeMap<System, Option<f64>>,
    /// Switchboard's value over each peer's.
    switchboard_over: BTreeMap<System, Option<f64>>,
}

pub(super) async fn run(args: Compare) -> Result<()> {
    let scenario = args
        .scenario
        .first()
        .context("no scenario after `--`")?
        .clone();
    if !["idle", "broadcast", "groups", "connect"].contains(&scenario.as_str()) {
        bail!("compare runs idle, broadcast, groups or connect, not {scenario:?}");
    }
    if args
        .scenario
        .iter()
        .any(|a| a == "--target" || a.starts_with("--target="))
    {
        bail!("give the systems with `compare --targets`, not `--target` after `--`");
    }
    let mut targets = args.targets.clone();
    targets.dedup();
    let exe = std::env::current_exe().context("locating this binary")?;
    let mut reports: BTreeMap<System, Value> = BTreeMap::new();
    let mut failures: BTreeMap<System, String> = BTreeMap::new();
    for &target in &targets {
        eprintln!("compare: {scenario} against {target}");
        let output = tokio::process::Command::new(&exe)
            .args(&args.scenario)
            .args(["--target", &target.to_string()])
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("running {scenario} against {target}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let parsed = stdout
            .trim_end()
            .rsplit_once('\n')
            .and_then(|(report, _)| serde_json::from_str::<Value>(report).ok());
        match parsed {
            Some(report) if output.status.success() => {
                reports.insert(target, report);
            }
            _ => {
                let why = format!("{} ({})", stdout.trim(), output.status);
                eprintln!("compare: {scenario} against {target} failed: {why}");
                failures.insert(target, why);
            }
        }
    }
    let rows = rows(&targets, &figures(&scenario, &reports), &reports);
    let table = table(&targets, &rows);
    let out = args.out.clone().unwrap_or_else(|| {
        switchboard_tests::workspace::root()
            .join("target/bench")
            .join(format!("compare-{scenario}.json"))
    });
    let document = json!({
        "scenario": scenario,
        "arguments": args.scenario,
        "targets": targets,
        "machine": machine(),
        "rows": rows,
        "reports": reports,
        "failures": failures,
    });
    write(&out, &document)?;
    print!("{table}");
    println!(
        "compare: {scenario} against {}; JSON in {}",
        targets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        out.display()
    );
    if !failures.is_empty() {
        bail!(
            "{scenario} failed against {}",
            failures
                .keys()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// The headline figures of `scenario`; broadcast and groups have one set per
/// payload size or group size (taken from the first report that has them).
fn figures(scenario: &str, reports: &BTreeMap<System, Value>) -> Vec<Figure> {
    use Better::{Higher, Lower};
    let first = reports.values().next();
    let count = |key: &str| first.and_then(|r| r[key].as_array()).map_or(0, Vec::len);
    match scenario {
        "idle" => {
            let mut cpu = Figure::new("idle CPU, % of a core", "proxy_idle_cpu_share", Lower);
            cpu.scale = 100.0;
            vec![
                Figure::new(
                    "server RSS per connection, B",
                    "proxy_rss_bytes_per_connection",
                    Lower,
                ),
                Figure::new(
                    "kernel slab per connection (both ends), B",
                    "slab_bytes_per_connection_both_ends",
                    Lower,
                ),
                cpu,
            ]
        }
        "broadcast" => (0..count("sizes"))
            .flat_map(|i| {
                let size = first
                    .and_then(|r| r["sizes"][i]["size"].as_u64())
                    .unwrap_or_default();
                let at = |what: &str| format!("sizes.{i}.half_rate.{what}");
                [
                    Figure::new(
                        format!("{size} B: max deliveries/s (p99 under the limit)"),
                        format!("sizes.{i}.max_deliveries_per_second"),
                        Higher,
                    ),
                    Figure::new(
                        format!("{size} B: p50 at half rate, ms"),
                        at("latency_ms.p50"),
                        Lower,
                    ),
                    Figure::new(
                        format!("{size} B: p99 at half rate, ms"),
                        at("latency_ms.p99"),
                        Lower,
                    ),
                    Figure::new(
                        format!("{size} B: p99.9 at half rate, ms"),
                        at("latency_ms.p999"),
                        Lower,
                    ),
                    Figure::new(
                        format!("{size} B: max at half rate, ms"),
                        at("latency_ms.max"),
                        Lower,
                    ),
                    Figure::new(
                        format!("{size} B: server CPU-s per million deliveries"),
                        at("proxy_cpu_seconds_per_million"),
                        Lower,
                    ),
                ]
            })
            .collect(),
        "groups" => (0..count("phases"))
            .flat_map(|i| {
                let size = first
                    .and_then(|r| r["phases"][i]["group_size"].as_u64())
                    .unwrap_or_default();
                let at = |what: &str| format!("phases.{i}.step.{what}");
                [
                    Figure::new(
                        format!("groups of {size}: deliveries/s"),
                        at("deliveries_per_second"),
                        Higher,
                    ),
                    Figure::new(
                        format!("groups of {size}: p50, ms"),
                        at("latency_ms.p50"),
                        Lower,
                    ),
                    Figure::new(
                        format!("groups of {size}: p99, ms"),
                        at("latency_ms.p99"),
                        Lower,
                    ),
                    Figure::new(
                        format!("groups of {size}: server CPU-s per million deliveries"),
                        at("proxy_cpu_seconds_per_million"),
                        Lower,
                    ),
                ]
            })
            .collect(),
        _ => vec![
            Figure::new("connections/s", "connections_per_second", Higher),
            Figure::new("connect p50, ms", "connect_ms.p50", Lower),
            Figure::new("connect p99, ms", "connect_ms.p99", Lower),
        ],
    }
}

/// One row per figure: each system's value and Switchboard's over each peer's.
fn rows(targets: &[System], figures: &[Figure], reports: &BTreeMap<System, Value>) -> Vec<Row> {
    figures
        .iter()
        .map(|figure| {
            let values: BTreeMap<System, Option<f64>> = targets
                .iter()
                .map(|t| {
                    (
                        *t,
                        reports
                            .get(t)
                            .and_then(|r| value(r, &figure.path))
                            .map(|v| v * figure.scale),
                    )
                })
                .collect();
            let ours = values.get(&System::Switchboard).copied().flatten();
            let switchboard_over = targets
                .iter()
                .filter(|t| **t != System::Switchboard)
                .map(|t| {
                    let ratio = match (ours, values.get(t).copied().flatten()) {
                        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
                        _ => None,
                    };
                    (*t, ratio)
                })
                .collect();
            Row {
                figure: figure.name.clone(),
                better: figure.better,
                values,
                switchboard_over,
            }
        })
        .collect()
}

/// The number at a dotted path (`sizes.0.half_rate.latency_ms.p99`).
fn value(report: &Value, path: &str) -> Option<f64> {
    let mut v = report;
    for key in path.split('.') {
        v = match key.parse::<usize>() {
            Ok(i) => v.get(i)?,
            Err(_) => v.get(key)?,
        };
    }
    v.as_f64()
}

fn table(targets: &[System], rows: &[Row]) -> String {
    let peers: Vec<System> = targets
        .iter()
        .copied()
        .filter(|t| *t != System::Switchboard)
        .collect();
    let mut header = vec!["figure".to_owned(), "better".to_owned()];
    header.extend(targets.iter().map(ToString::to_string));
    header.extend(peers.iter().map(|p| format!("switchboard/{p}")));
    let mut lines = vec![header];
    let number = |v: Option<f64>| match v {
        None => "-".to_owned(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    };
    for row in rows {
        let mut line = vec![
            row.figure.clone(),
            match row.better {
                Better::Higher => "higher".to_owned(),
                Better::Lower => "lower".to_owned(),
            },
        ];
        line.extend(
            targets
                .iter()
                .map(|t| number(row.values.get(t).copied().flatten())),
        );
        line.extend(
            peers
                .iter()
                .map(|p| match row.switchboard_over.get(p).copied().flatten() {
                    Some(r) => format!("{r:.2}x"),
                    None => "-".to_owned(),
                }),
        );
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for line in &lines {
        for (c, cell) in line.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str("  ");
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
        }
        text.push('\n');
    }
    text
}

/// What the figures were measured on.
fn machine() -> Value {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|v| v.trim().to_owned());
    json!({
        "cpus": std::thread::available_parallelism().map_or(0, usize::from),
        "cpu_model": cpu_model,
        "kernel": kernel,
        "core_split": "none: generator workers, servers and publisher share every core (no pinning)",
    })
}

fn write(path: &PathBuf, document: &Value) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(document)?)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_reach_into_arrays() {
        let report = json!({"sizes": [{"half_rate": {"latency_ms": {"p99": 4.5}}}]});
        assert_eq!(
            value(&report, "sizes.0.half_rate.latency_ms.p99"),
            Some(4.5)
        );
        assert_eq!(value(&report, "sizes.1.half_rate.latency_ms.p99"), None);
        assert_eq!(value(&report, "sizes.0.half_rate"), None);
    }

    #[test]
    fn broadcast_figures_per_size_and_a_table_with_ratios() {
        let reports = BTreeMap::from([
            (
                System::Switchboard,
                json!({"sizes": [{"size": 100, "max_deliveries_per_second": 300.0}]}),
            ),
            (
                System::Pushpin,
                json!({"sizes": [{"size": 100, "max_deliveries_per_second": 100.0}]}),
            ),
        ]);
        let figures = figures("broadcast", &reports);
        assert_eq!(figures.len(), 6);
        assert_eq!(figures[0].path, "sizes.0.max_deliveries_per_second");
        let rows = rows(&[System::Switchboard, System::Pushpin], &figures, &reports);
        assert_eq!(rows[0].switchboard_over[&System::Pushpin], Some(3.0));
        // Figures a report lacks have no value and no ratio.
        assert_eq!(rows[1].values[&System::Pushpin], None);
        assert_eq!(rows[1].switchboard_over[&System::Pushpin], None);
        let text = table(&[System::Switchboard, System::Pushpin], &rows[..1]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("switchboard/pushpin"), "{text}");
        assert!(lines[1].starts_with("100 B: max deliveries/s"), "{text}");
        assert!(lines[1].ends_with("3.00x"), "{text}");
    }
}
