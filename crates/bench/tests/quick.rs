//! `genq-bench` as CI and people run it. This test also makes `cargo test
//! --workspace` build the binary with the workspace's features, which
//! `GENQ_BENCH_PROFILE=dev scripts/bench` then runs instead of building it
//! again with features of its own (`cargo build -p genq-bench` resolves them
//! without the other crates' dev-dependencies: a second build of much of
//! the tree).

use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_genq-bench");

#[test]
fn a_quick_queue_run_prints_its_figures_as_markdown() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BINARY)
        .args([
            "--quick",
            "--only",
            "queue",
            "--markdown",
            "--postgres-url",
            "off",
        ])
        .arg("--tmp-dir")
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| queue: batch submit"))
        .unwrap_or_else(|| panic!("no batch submit row in\n{stdout}"));
    let rate: f64 = row
        .split('|')
        .nth(2)
        .and_then(|cell| cell.split_whitespace().next())
        .map(|n| n.replace(',', ""))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {row}"));
    assert!(rate > 0.0, "{row}");
    // Its scratch directories are removed when it ends.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn an_unknown_figure_is_a_usage_error_naming_the_known_ones() {
    let out = Command::new(BINARY)
        .args(["--only", "nosuch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pg-queue"), "{stderr}");
}
