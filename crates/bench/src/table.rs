//! The report: one row per figure, printed as a fixed-width table or as
//! Markdown, under a line naming the machine.

use crate::stats::Summary;

/// What a figure is held against.
#[derive(Clone, Debug)]
pub struct Target {
    /// As printed, e.g. "≤ 1.5×".
    pub wanted: String,
    pub met: bool,
}

impl Target {
    pub fn at_most(value: f64, limit: f64, wanted: impl Into<String>) -> Target {
        Target {
            wanted: wanted.into(),
            met: value <= limit,
        }
    }

    pub fn at_least(value: f64, limit: f64, wanted: impl Into<String>) -> Target {
        Target {
            wanted: wanted.into(),
            met: value >= limit,
        }
    }

    pub fn below(value: f64, limit: f64, wanted: impl Into<String>) -> Target {
        Target {
            wanted: wanted.into(),
            met: value < limit,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Row {
    pub figure: String,
    /// None: the figure could not be measured.
    pub result: Option<Summary>,
    pub unit: &'static str,
    pub decimals: usize,
    /// A ratio of medians measured in the same run, e.g. ("genq/floor", 1.4).
    pub ratio: Option<(String, f64)>,
    pub target: Option<Target>,
    pub note: Option<String>,
    /// Something went wrong (not merely slow): the harness exits non-zero.
    pub broken: Option<String>,
}

impl Row {
    pub fn new(figure: impl Into<String>, summary: Summary, unit: &'static str) -> Row {
        Row {
            figure: figure.into(),
            result: Some(summary),
            unit,
            decimals: default_decimals(summary.median),
            ratio: None,
            target: None,
            note: None,
            broken: None,
        }
    }

    pub fn broken(figure: impl Into<String>, error: &anyhow::Error) -> Row {
        Row {
            figure: figure.into(),
            result: None,
            unit: "",
            decimals: 0,
            ratio: None,
            target: None,
            note: None,
            broken: Some(format!("{error:#}")),
        }
    }

    /// A figure that could not be measured here (no PostgreSQL, no npm):
    /// printed with the reason, and not an error.
    pub fn skipped(figure: impl Into<String>, why: &str) -> Row {
        Row {
            figure: figure.into(),
            result: None,
            unit: "",
            decimals: 0,
            ratio: None,
            target: None,
            note: Some(format!("SKIPPED: {why}")),
            broken: None,
        }
    }

    pub fn decimals(mut self, decimals: usize) -> Row {
        self.decimals = decimals;
        self
    }

    pub fn ratio(mut self, label: impl Into<String>, value: f64) -> Row {
        self.ratio = Some((label.into(), value));
        self
    }

    pub fn target(mut self, target: Target) -> Row {
        self.target = Some(target);
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = Some(note.into());
        self
    }

    /// Marks the figure as measured on a run that misbehaved (errors).
    pub fn problem(mut self, problem: Option<String>) -> Row {
        self.broken = problem;
        self
    }

    fn cells(&self) -> [String; 7] {
        let num = |v: f64| format_number(v, self.decimals);
        let (median, min, max, runs) = match &self.result {
            Some(s) => (num(s.median), num(s.min), num(s.max), s.runs.to_string()),
            None => ("—".into(), "—".into(), "—".into(), "0".into()),
        };
        let mut versus = Vec::new();
        if let Some((label, value)) = &self.ratio {
            versus.push(format!("{label} {value:.2}×"));
        }
        if let Some(t) = &self.target {
            let verdict = if t.met { "ok" } else { "MISSED" };
            versus.push(format!("target {}: {verdict}", t.wanted));
        }
        if let Some(note) = &self.note {
            versus.push(note.clone());
        }
        if let Some(e) = &self.broken {
            // The whole message went to stderr when it happened.
            versus.push(format!("BROKEN: {}", e.lines().next().unwrap_or_default()));
        }
        [
            self.figure.clone(),
            median,
            min,
            max,
            runs,
            self.unit.to_owned(),
            versus.join("; "),
        ]
    }
}

fn default_decimals(v: f64) -> usize {
    match v.abs() {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    }
}

/// Thousands separated by commas, so rates read at a glance.
pub fn format_number(v: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if v < 0.0 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

const HEADINGS: [&str; 7] = [
    "figure",
    "median",
    "min",
    "max",
    "runs",
    "unit",
    "vs reference / target",
];
/// Numeric columns line up on the right.
const RIGHT: [bool; 7] = [false, true, true, true, true, false, false];

pub fn render_text(header: &str, rows: &[Row]) -> String {
    let cells: Vec<[String; 7]> = rows.iter().map(Row::cells).collect();
    let mut widths = HEADINGS.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String]| {
        let mut out = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[i] - cell.chars().count());
            let last = i == row.len() - 1;
            match (RIGHT[i], last) {
                (true, _) => out.push_str(&format!("{pad}{cell}")),
                (false, true) => out.push_str(cell),
                (false, false) => out.push_str(&format!("{cell}{pad}")),
            }
            if !last {
                out.push_str("  ");
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = format!("{header}\n\n");
    out.push_str(&line(&HEADINGS.map(String::from)));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

pub fn render_markdown(header: &str, rows: &[Row]) -> String {
    let header = header.replace('\n', "  \n");
    let mut out = format!("{header}\n\n| {} |\n", HEADINGS.join(" | "));
    let align: Vec<&str> = RIGHT
        .iter()
        .map(|r| if *r { "---:" } else { "---" })
        .collect();
    out.push_str(&format!("|{}|\n", align.join("|")));
    for row in rows {
        let cells = row.cells().map(|c| c.replace('|', "\\|"));
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// "2 cores · AMD EPYC · 23.5 GiB RAM · ffmpeg 5.1.9 · 2025-06-01 12:00 UTC".
pub fn machine_line(ffmpeg_version: &str) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = proc_field(&cpuinfo, "model name").unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = proc_field(&meminfo, "MemTotal")
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or("? GiB".into(), |kib| {
            format!("{:.1} GiB", kib / (1024.0 * 1024.0))
        });
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    format!("{cores} cores · {cpu} · {mem_gib} RAM · {ffmpeg_version} · {date}")
}

/// The value of `key` in a /proc file of `key : value` lines.
pub fn proc_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(format_number(1234567.0, 0), "1,234,567");
        assert_eq!(format_number(999.0, 0), "999");
        assert_eq!(format_number(1234.567, 2), "1,234.57");
        assert_eq!(format_number(-0.5, 2), "-0.50");
    }

    #[test]
    fn rows_show_ratio_target_and_breakage() {
        let s = Summary::of(&[1.0, 2.0, 3.0]).unwrap();
        let row = Row::new("x", s, "s")
            .ratio("genq/floor", 1.6)
            .target(Target::at_most(1.6, 1.5, "≤ 1.5×"));
        assert_eq!(row.cells()[6], "genq/floor 1.60×; target ≤ 1.5×: MISSED");
        let skipped = Row::skipped("z", "no PostgreSQL");
        assert_eq!(skipped.cells()[6], "SKIPPED: no PostgreSQL");
        assert_eq!(skipped.cells()[1], "—");
        let broken = Row::broken("y", &anyhow::anyhow!("no ffmpeg"));
        assert_eq!(broken.cells()[6], "BROKEN: no ffmpeg");
        let text = render_text("head", &[row, broken]);
        assert!(text.lines().nth(2).unwrap().starts_with("figure"));
    }

    #[test]
    fn proc_fields() {
        let text = "MemTotal:       24684084 kB\nVmRSS:\t  1234 kB\n";
        assert_eq!(proc_field(text, "VmRSS").as_deref(), Some("1234 kB"));
    }
}
