//! Results: a table on stdout and a JSON file under `target/plex-bench/`.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::{env, fs};

/// The implementation every ratio is taken against.
pub(crate) const PLEX: &str = "plex";

/// One measured scenario: each implementation's figure over the runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scenario {
    /// Short identifier, stable across runs.
    pub(crate) name: &'static str,
    /// Unit of every figure.
    pub(crate) unit: &'static str,
    /// Whether a larger figure is better.
    pub(crate) higher_is_better: bool,
    /// Goals for Plex's figure, reported against rather than asserted.
    pub(crate) targets: Vec<Target>,
    /// Figures by implementation, Plex first.
    pub(crate) results: Vec<(&'static str, Figure)>,
}

/// One implementation's figure in a scenario: the median of its runs, and
/// their spread. Ratios and targets use the median.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Figure {
    pub(crate) min: f64,
    pub(crate) median: f64,
    pub(crate) max: f64,
}

impl Figure {
    /// The figure of `runs` (an odd number of them; at least one).
    pub(crate) fn of(mut runs: Vec<f64>) -> Figure {
        runs.sort_by(f64::total_cmp);
        Figure {
            min: runs[0],
            median: runs[runs.len() / 2],
            max: runs[runs.len() - 1],
        }
    }

    /// The median, then `(min-max)` if the runs differ.
    fn cell(&self) -> String {
        match self.min == self.max {
            true => number(self.median),
            false => format!(
                "{} ({}-{})",
                number(self.median),
                number(self.min),
                number(self.max)
            ),
        }
    }
}

impl Scenario {
    /// The median figure of `implementation`.
    fn result(&self, implementation: &str) -> Option<f64> {
        self.figure(implementation).map(|f| f.median)
    }

    fn figure(&self, implementation: &str) -> Option<&Figure> {
        self.results
            .iter()
            .find(|(name, _)| *name == implementation)
            .map(|(_, figure)| figure)
    }

    /// Whether Plex's figure meets `target`; `None` when a figure it needs
    /// is missing.
    fn meets(&self, target: &Target) -> Option<bool> {
        let bound = target.bound(self)?;
        let plex = self.result(PLEX)?;
        Some(if self.higher_is_better {
            plex >= bound
        } else {
            plex <= bound
        })
    }

    /// The target column: each goal with its verdict.
    fn targets_cell(&self) -> String {
        if self.targets.is_empty() {
            return "-".into();
        }
        let bound = if self.higher_is_better { ">=" } else { "<=" };
        let cells: Vec<String> = self
            .targets
            .iter()
            .map(|target| {
                let verdict = match self.meets(target) {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "n/a",
                };
                format!("{bound} {target} {verdict}")
            })
            .collect();
        cells.join("; ")
    }
}

/// A goal for Plex's figure in a scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Target {
    /// A fixed figure, in the scenario's unit.
    Value(f64),
    /// A multiple of another implementation's figure.
    Ratio {
        /// The implementation compared against.
        of: &'static str,
        /// The multiple of its figure.
        ratio: f64,
    },
}

impl Target {
    /// The figure Plex has to reach (or stay under) in `scenario`.
    fn bound(&self, scenario: &Scenario) -> Option<f64> {
        match *self {
            Target::Value(value) => Some(value),
            Target::Ratio { of, ratio } => Some(ratio * scenario.result(of)?),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Target::Value(value) => f.write_str(&number(value)),
            Target::Ratio { of, ratio } => write!(f, "{ratio:.2}x {of}"),
        }
    }
}

/// A suite's results, in the order they ran.
#[derive(Debug, Default)]
pub(crate) struct Report {
    scenarios: Vec<Scenario>,
    notes: Vec<String>,
}

impl Report {
    pub(crate) fn push(&mut self, scenario: Scenario) {
        self.scenarios.push(scenario);
    }

    /// A line printed under the table.
    pub(crate) fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Writes the table: one row per scenario, a column per implementation,
    /// a ratio column (Plex over it) per baseline, and the target if any.
    pub(crate) fn write_table(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(self.table().as_bytes())
    }

    /// Writes `<target dir>/plex-bench/<suite>.json`; returns its path.
    pub(crate) fn write_json(&self, suite: &str) -> io::Result<PathBuf> {
        let dir = target_dir().join("plex-bench");
        fs::create_dir_all(&dir)?;
        let path = fs::canonicalize(dir)?.join(format!("{suite}.json"));
        fs::write(&path, self.json())?;
        Ok(path)
    }

    fn table(&self) -> String {
        let baselines = self.baselines();
        let mut header = vec![
            "scenario".to_string(),
            "unit".into(),
            "better".into(),
            PLEX.into(),
        ];
        for name in &baselines {
            header.push((*name).into());
            header.push(format!("{PLEX}/{name}"));
        }
        header.push("target".into());
        let mut rows = vec![header];
        for s in &self.scenarios {
            let plex = s.result(PLEX);
            let cell = |name| s.figure(name).map_or("-".into(), Figure::cell);
            let mut row = vec![
                s.name.to_string(),
                s.unit.into(),
                if s.higher_is_better {
                    "higher"
                } else {
                    "lower"
                }
                .into(),
                cell(PLEX),
            ];
            for name in &baselines {
                let other = s.result(name);
                row.push(cell(name));
                row.push(match (plex, other) {
                    (Some(p), Some(o)) if o != 0.0 => format!("{:.2}x", p / o),
                    _ => "-".into(),
                });
            }
            row.push(s.targets_cell());
            rows.push(row);
        }
        let mut widths = vec![0; rows[0].len()];
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let mut out = String::new();
        for row in &rows {
            let mut line = String::new();
            for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
                // Names left, figures right.
                match i {
                    0..=2 => write!(line, "{cell:<width$}  "),
                    _ => write!(line, "{cell:>width$}  "),
                }
                .expect("writing to a String cannot fail");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str(
            "note: each figure is the median of the runs, with (min-max) when they differ\n",
        );
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }

    /// Implementations other than Plex, in order of first appearance.
    fn baselines(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        for (name, _) in self.scenarios.iter().flat_map(|s| &s.results) {
            if *name != PLEX && !names.contains(name) {
                names.push(*name);
            }
        }
        names
    }

    /// `{"scenarios":[{"name","unit","higher_is_better","targets"?,"results":{..}}]}`,
    /// a target being `{"value":x}` or `{"ratio":x,"of":"name"}`, a result
    /// `"name":{"median":x,"min":x,"max":x}`.
    fn json(&self) -> String {
        let mut out = String::from("{\"scenarios\":[");
        for (i, s) in self.scenarios.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("\n  {\"name\":");
            json_string(&mut out, s.name);
            out.push_str(",\"unit\":");
            json_string(&mut out, s.unit);
            out.push_str(&format!(",\"higher_is_better\":{}", s.higher_is_better));
            if !s.targets.is_empty() {
                out.push_str(",\"targets\":[");
                for (j, target) in s.targets.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    match *target {
                        Target::Value(value) => {
                            out.push_str("{\"value\":");
                            json_number(&mut out, value);
                        }
                        Target::Ratio { of, ratio } => {
                            out.push_str("{\"ratio\":");
                            json_number(&mut out, ratio);
                            out.push_str(",\"of\":");
                            json_string(&mut out, of);
                        }
                    }
                    out.push('}');
                }
                out.push(']');
            }
            out.push_str(",\"results\":{");
            for (j, (name, figure)) in s.results.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                json_string(&mut out, name);
                out.push_str(":{\"median\":");
                json_number(&mut out, figure.median);
                out.push_str(",\"min\":");
                json_number(&mut out, figure.min);
                out.push_str(",\"max\":");
                json_number(&mut out, figure.max);
                out.push('}');
            }
            out.push_str("}}");
        }
        out.push_str("\n]}\n");
        out
    }
}

/// `CARGO_TARGET_DIR` if set, else the workspace's `target/`.
pub(crate) fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}

/// A figure with about three significant digits; whole numbers as such.
fn number(value: f64) -> String {
    match value.abs() {
        v if v >= 1000.0 || v.fract() == 0.0 => format!("{value:.0}"),
        v if v >= 100.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// JSON has no NaN or infinity: those become `null`.
fn json_number(out: &mut String, value: f64) {
    if value.is_finite() {
        // `Display` for f64 never uses an exponent: always a JSON number.
        out.push_str(&value.to_string());
    } else {
        out.push_str("null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut r = Report::default();
        r.push(Scenario {
            name: "codec",
            unit: "GB/s",
            higher_is_better: true,
            targets: vec![Target::Ratio {
                of: "memcpy",
                ratio: 0.4,
            }],
            results: vec![
                (PLEX, Figure::of(vec![5.0, 4.0, 6.5])),
                ("memcpy", Figure::of(vec![10.0])),
            ],
        });
        r.push(Scenario {
            name: "mem",
            unit: "B/stream",
            higher_is_better: false,
            targets: vec![Target::Value(512.0)],
            results: vec![(PLEX, Figure::of(vec![600.5]))],
        });
        r
    }

    #[test]
    fn json_has_the_agreed_shape() {
        assert_eq!(
            report().json(),
            "{\"scenarios\":[\n  \
             {\"name\":\"codec\",\"unit\":\"GB/s\",\"higher_is_better\":true,\
             \"targets\":[{\"ratio\":0.4,\"of\":\"memcpy\"}],\
             \"results\":{\"plex\":{\"median\":5,\"min\":4,\"max\":6.5},\
             \"memcpy\":{\"median\":10,\"min\":10,\"max\":10}}},\n  \
             {\"name\":\"mem\",\"unit\":\"B/stream\",\"higher_is_better\":false,\
             \"targets\":[{\"value\":512}],\
             \"results\":{\"plex\":{\"median\":600.5,\"min\":600.5,\"max\":600.5}}}\n]}\n"
        );
    }

    #[test]
    fn table_has_ratio_and_target_columns() {
        let table = report().table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("plex/memcpy"), "{table}");
        assert!(
            lines[1].contains(" 5 (4-6.50)  ")
                && lines[1].contains("  0.50x  ")
                && lines[1].ends_with(">= 0.40x memcpy met"),
            "{table}"
        );
        assert!(lines[2].ends_with("<= 512 MISSED"), "{table}");
    }

    #[test]
    fn a_ratio_target_without_its_baseline_is_not_judged() {
        let s = Scenario {
            name: "rpc",
            unit: "us",
            higher_is_better: false,
            targets: vec![
                Target::Ratio {
                    of: "raw",
                    ratio: 1.3,
                },
                Target::Value(20.0),
            ],
            results: vec![
                (PLEX, Figure::of(vec![25.0])),
                ("yamux", Figure::of(vec![40.0])),
            ],
        };
        assert_eq!(s.targets_cell(), "<= 1.30x raw n/a; <= 20 MISSED");
    }

    #[test]
    fn a_figure_is_the_middle_run_and_the_extremes() {
        let figure = Figure::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((figure.min, figure.median, figure.max), (1.0, 2.0, 3.0));
    }

    #[test]
    fn strings_and_numbers_are_escaped() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\n");
        json_number(&mut out, f64::NAN);
        assert_eq!(out, "\"a\\\"b\\\\c\\u000a\"null");
    }
}
