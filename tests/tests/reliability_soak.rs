//! A bounded soak: ~35 s of steady load through the gateway onto two providers that each fail
//! 20% of requests, with retries and fallbacks configured. No client may see an error, and
//! the gateway may not grow its open file descriptors or memory while doing it: a connection
//! leaked per failed attempt (hundreds over the run) or per-request memory that is never
//! freed would show. Loopback only; under a minute including start-up.

use std::process::Command;
use std::time::{Duration, Instant};
use tollgate_e2e::{bin_path, get, Gateway, Mock};

const VK: &str = "vk-soak-secret";
const LOAD: Duration = Duration::from_secs(35);
const WARM_UP: Duration = Duration::from_secs(5);
const RATE: u32 = 100;

/// Open file descriptors and resident memory (bytes) of a process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    fds: usize,
    rss: u64,
}

fn sample(pid: u32) -> Sample {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    Sample {
        fds,
        rss: kb * 1024,
    }
}

fn config(a: &Mock, b: &Mock) -> String {
    // Every target gets two attempts; six targets alternate between the providers, so a
    // request fails only if twelve attempts in a row do (0.2^12: never in this run), while
    // one in 25 requests falls back at least once.
    format!(
        "providers:
  - {{name: a, kind: openai_compatible, base_url: {}, timeout: 5s, retries: {{max: 1, backoff: 5ms, max_backoff: 20ms}}, keys: [{{name: a1, key: sk-a1}}, {{name: a2, key: sk-a2}}]}}
  - {{name: b, kind: openai_compatible, base_url: {}, timeout: 5s, retries: {{max: 1, backoff: 5ms, max_backoff: 20ms}}, keys: [{{name: b1, key: sk-b1}}]}}
routing:
  aliases: {{soak: [a/m1, b/m1, a/m2, b/m2, a/m3, b/m3]}}
virtual_keys:
  - {{id: vk-soak, key: {VK}, rate_limit: {{requests: {{limit: 100000000, window: 1m}}}}}}
",
        a.base_url(),
        b.base_url()
    )
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn steady_load_on_failing_providers_is_served_without_errors_or_leaks() {
    let a = Mock::start(&["--fail-rate", "0.2", "--latency", "2ms"]);
    let b = Mock::start(&["--fail-rate", "0.2", "--latency", "2ms"]);
    let gw = Gateway::start(&config(&a, &b));
    let dir = tempfile::tempdir().expect("temp dir");
    let body = dir.path().join("body.json");
    std::fs::write(
        &body,
        r#"{"model":"soak","max_tokens":16,"messages":[{"role":"user","content":"Say hello"}]}"#,
    )
    .expect("write body");
    let report_path = dir.path().join("report.json");

    let started = Instant::now();
    let mut load = Command::new(bin_path("loadgen"))
        .args([
            "run",
            "--target",
            &format!("{}/v1/chat/completions", gw.url),
        ])
        .args(["--rate", &RATE.to_string()])
        .args(["--duration", &format!("{}s", LOAD.as_secs())])
        .args(["--connections", "16", "--timeout", "10s", "--key", VK])
        .arg("--body")
        .arg(&body)
        .arg("--json")
        .arg(&report_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start loadgen run");

    // Baseline once connections, pools and allocator arenas have settled; then a sample
    // every few seconds, printed if an assertion fails.
    std::thread::sleep(WARM_UP);
    let warm = sample(gw.pid());
    let mut series = vec![(started.elapsed().as_secs(), warm)];
    while load.try_wait().expect("poll loadgen").is_none() {
        std::thread::sleep(Duration::from_secs(3));
        series.push((started.elapsed().as_secs(), sample(gw.pid())));
    }
    let out = load.wait_with_output().expect("loadgen output");
    // Let the gateway notice the closed client connections.
    std::thread::sleep(Duration::from_millis(500));
    let end = sample(gw.pid());
    series.push((started.elapsed().as_secs(), end));
    let trace = format!(
        "samples (s, fds, rss MiB): {:?}\nloadgen stdout:\n{}\nstderr:\n{}",
        series
            .iter()
            .map(|(t, s)| (t, s.fds, s.rss >> 20))
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    println!("{trace}");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&report_path)
            .unwrap_or_else(|e| panic!("no report ({e})\n{trace}")),
    )
    .expect("report is JSON");
    let target = &report["target"];
    let sent = target["requests"].as_u64().unwrap_or(0);
    let ok = target["ok"].as_u64().unwrap_or(0);
    // Zero client-visible errors: every response a 2xx, no timeouts, no transport errors.
    assert_eq!(target["errors"], 0, "{target:#}\n{trace}");
    assert_eq!(ok, sent, "{target:#}\n{trace}");
    assert!(
        sent >= u64::from(RATE) * LOAD.as_secs() * 9 / 10,
        "the load ran: {sent} requests\n{trace}"
    );

    // The providers did fail, and the gateway retried and fell back to hide it.
    let upstream: u64 = [&a, &b]
        .iter()
        .map(|m| {
            get(&format!("{}/_mock/stats", m.url), &[]).json()["requests"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert!(
        upstream > sent * 11 / 10,
        "{upstream} upstream calls for {sent} requests"
    );
    let metrics = get(&format!("{}/metrics", gw.admin_url), &[]).body;
    assert!(
        metric(&metrics, "tollgate_retries_total{") > 0.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "tollgate_fallbacks_total{") > 0.0,
        "{metrics}"
    );

    // No leak of connections: a leaked upstream or client connection per failed attempt
    // would add hundreds. The margin covers pooled upstream connections opened by bursts of
    // concurrency later in the run (at most one per client connection and provider).
    assert!(
        end.fds <= warm.fds + 40,
        "open fds grew from {} to {}\n{trace}",
        warm.fds,
        end.fds
    );
    // No unbounded memory growth: generous (under 20 MiB and under half the warm size), as
    // the allocator keeps what it got; a steady run stays flat.
    let growth = end.rss.saturating_sub(warm.rss);
    assert!(
        growth < (20 << 20).min(warm.rss / 2),
        "RSS grew by {} KiB (from {} KiB)\n{trace}",
        growth >> 10,
        warm.rss >> 10
    );
}
