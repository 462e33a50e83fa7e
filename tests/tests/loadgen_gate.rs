//! `loadgen run --direct ... --max-p99-overhead` as a CI performance gate: it exits 1 when the
//! target is slower than the direct path by more than the threshold, and 0 through the real
//! gateway with a generous one. Short runs at a modest rate; no timing is asserted beyond the
//! gates themselves (benchmarks live in bench/ and docs/BENCHMARKS.md).

use std::process::{Command, Output};
use tollgate_e2e::{bin_path, Gateway, Mock};

const VK: &str = "vk-gate-secret";

fn loadgen_run(target: &str, direct: &str, extra: &[&str]) -> (Output, serde_json::Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let out = Command::new(bin_path("loadgen"))
        .args(["run", "--target", target, "--direct", direct])
        .args(["--rate", "200", "--duration", "2s", "--slice", "250ms"])
        .args(["--timeout", "5s", "--json"])
        .arg(&json)
        .args(extra)
        .output()
        .expect("run loadgen");
    let report = std::fs::read_to_string(&json)
        .map(|t| serde_json::from_str(&t).expect("report is JSON"))
        .unwrap_or_else(|e| {
            panic!(
                "no JSON report ({e}); exit {:?}\nstdout:\n{}\nstderr:\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out, report)
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no `{name}` check in {report:#}"))
}

#[test]
fn overhead_above_the_threshold_fails_the_run() {
    // The "gateway" is a mock that answers 50 ms late; the direct side answers at once.
    let slow = Mock::start(&["--latency", "50ms"]);
    let fast = Mock::start(&[]);
    let (out, report) = loadgen_run(
        &format!("{}/v1/chat/completions", slow.url),
        &format!("{}/v1/chat/completions", fast.url),
        &["--max-p99-overhead", "5ms", "--max-errors", "0"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let gate = check(&report, "max_p99_overhead");
    assert_eq!(gate["passed"], false, "{report:#}");
    assert_eq!(gate["limit"], 5000.0);
    assert!(
        stderr.contains("threshold failed: max_p99_overhead"),
        "{stderr}"
    );
    // Only the overhead gate broke: both sides answered everything.
    assert_eq!(check(&report, "max_errors")["passed"], true, "{report:#}");
    assert_eq!(report["passed"], false);
}

#[test]
fn the_gateway_passes_a_generous_gate() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&format!(
        "providers:
  - {{name: mock, kind: openai_compatible, base_url: {}, keys: [{{key: sk-gate}}], models: [gpt-4o-mini]}}
virtual_keys:
  - {{id: vk-gate, key: {VK}, models: [gpt-4o-mini]}}
",
        mock.base_url()
    ));
    let (out, report) = loadgen_run(
        &format!("{}/v1/chat/completions", gw.url),
        &format!("{}/v1/chat/completions", mock.url),
        &[
            "--key",
            VK,
            "--max-p99-overhead",
            "250ms",
            "--max-errors",
            "0",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(check(&report, "max_p99_overhead")["passed"], true);
    // Every request on both sides was answered with 200 (the key and model were accepted).
    assert_eq!(report["target"]["errors"], 0, "{report:#}");
    assert_eq!(report["target"]["statuses"]["200"], report["target"]["ok"]);
    assert!(report["target"]["ok"].as_u64().unwrap_or(0) > 0);
    assert!(report["direct"]["ok"].as_u64().unwrap_or(0) > 0);
}
