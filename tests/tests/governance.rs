//! Rate limits, token limits and budgets at every tier, through the real gateway.

use serde_json::json;
use std::io::{Read, Write};
use std::time::Duration;
use tollgate_e2e::{post_json, Gateway, Mock};

/// Every model costs $1,000 per 1M tokens here ($0.001 a token), so small budgets bite fast.
const PRICING: &str = "pricing: {m: {input: 1000, output: 1000}}\n";

fn chat(gw: &Gateway, key: &str, max_tokens: u64) -> tollgate_e2e::Reply {
    post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", &format!("Bearer {key}"))],
        &json!({"model": "m", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "Say hello to the gateway"}]}),
    )
}

fn provider(name: &str, mock: &Mock) -> String {
    format!(
        "  - {{name: {name}, kind: openai_compatible, base_url: {}, models: [m]}}\n",
        mock.base_url()
    )
}

#[test]
fn request_limit_gives_429_with_retry_after_and_the_exact_fields() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&format!(
        "providers:\n{}virtual_keys:\n  - {{id: vk-a, key: ka, rate_limit: {{requests: {{limit: 3, window: 1m}}}}}}\n",
        provider("p", &mock)
    ));
    for remaining in ["2", "1", "0"] {
        let r = chat(&gw, "ka", 10);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(r.header("x-ratelimit-remaining-requests"), Some(remaining));
        assert!(r
            .header("x-ratelimit-reset-requests")
            .unwrap()
            .ends_with('s'));
    }
    let r = chat(&gw, "ka", 10);
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (429, "rate_limited"),
        "{}",
        r.body
    );
    let e = &r.json()["error"];
    assert_eq!(e["scope"], "virtual_key:vk-a");
    assert_eq!(e["limit_kind"], "requests");
    assert_eq!(
        (e["limit"].as_u64(), e["used"].as_u64()),
        (Some(3), Some(3))
    );
    let resets_at = e["resets_at"].as_str().expect("resets_at");
    assert!(
        resets_at.ends_with(":00Z"),
        "a 1m window resets on the minute: {resets_at}"
    );
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("request limit exceeded for virtual_key vk-a (3/3 per 1m"));
    let retry: u64 = r
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        mock.requests().len(),
        3,
        "the refused request never reached the provider"
    );
    let metrics = tollgate_e2e::get(&format!("{}/metrics", gw.admin_url), &[]).body;
    assert!(
        metrics.contains(
            "tollgate_limit_rejections_total{scope_kind=\"virtual_key\",limit_kind=\"requests\"} 1"
        ),
        "{metrics}"
    );
}

#[test]
fn token_limit_counts_what_the_provider_reports() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&format!(
        "providers:\n{}virtual_keys:\n  - {{id: vk-t, key: kt, rate_limit: {{tokens: {{limit: 100, window: 1h}}}}}}\n",
        provider("p", &mock)
    ));
    let mut reported = 0;
    let mut refused = None;
    for _ in 0..20 {
        let r = chat(&gw, "kt", 10);
        if r.status != 200 {
            refused = Some(r);
            break;
        }
        reported += r.json()["usage"]["total_tokens"].as_u64().unwrap();
    }
    let r = refused.expect("the token limit refuses eventually");
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (429, "rate_limited"),
        "{}",
        r.body
    );
    assert_eq!(r.json()["error"]["limit_kind"], "tokens");
    assert_eq!(gw.used("virtual_key:vk-t", "tokens"), json!(reported));
    assert!(reported <= 100, "{reported}");
}

#[test]
fn team_budget_is_shared_by_its_keys() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&format!(
        "{PRICING}providers:\n{}teams: [{{id: ml, budget: {{limit_usd: 0.1, window: 1d}}}}]
virtual_keys:
  - {{id: vk-1, key: k1, team: ml}}
  - {{id: vk-2, key: k2, team: ml}}
",
        provider("p", &mock)
    ));
    let mut ok = [0, 0];
    let mut refusal = None;
    for i in 0..40 {
        let key = if i % 2 == 0 { "k1" } else { "k2" };
        let r = chat(&gw, key, 10);
        match r.status {
            200 => ok[i % 2] += 1,
            _ => {
                refusal = Some(r);
                break;
            }
        }
    }
    assert!(
        ok[0] > 0 && ok[1] > 0,
        "both keys spent from the budget: {ok:?}"
    );
    let r = refusal.expect("budget runs out");
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (402, "budget_exceeded"),
        "{}",
        r.body
    );
    let e = &r.json()["error"];
    assert_eq!(
        (e["scope"].as_str(), e["limit_kind"].as_str()),
        (Some("team:ml"), Some("budget_usd"))
    );
    assert_eq!(e["limit"], 0.1);
    for key in ["k1", "k2"] {
        assert_eq!(
            chat(&gw, key, 10).status,
            402,
            "{key} shares the exhausted team budget"
        );
    }
    let spent = gw.used("team:ml", "budget_usd").as_f64().unwrap();
    assert!(spent > 0.05 && spent <= 0.1, "{spent}");
}

#[test]
fn customer_tier_limits_every_team_under_it() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&format!(
        "providers:\n{}customers: [{{id: acme, rate_limit: {{requests: {{limit: 2, window: 1h}}}}}}]
teams: [{{id: a, customer: acme}}, {{id: b, customer: acme}}]
virtual_keys:
  - {{id: vk-a, key: ka, team: a}}
  - {{id: vk-b, key: kb, team: b}}
",
        provider("p", &mock)
    ));
    assert_eq!(chat(&gw, "ka", 10).status, 200);
    assert_eq!(chat(&gw, "kb", 10).status, 200);
    let r = chat(&gw, "ka", 10);
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["error"]["scope"], "customer:acme");
}

#[test]
fn provider_config_budget_drops_that_provider_while_another_serves() {
    let (a, b) = (Mock::start(&[]), Mock::start(&[]));
    let gw = Gateway::start(&format!(
        "{PRICING}providers:\n{}{}virtual_keys:
  - id: vk
    key: k
    providers:
      - {{provider: a, weight: 1000, budget: {{limit_usd: 0.05, window: 1M}}}}
      - {{provider: b, weight: 1}}
",
        provider("a", &a),
        provider("b", &b)
    ));
    let mut served = std::collections::HashMap::new();
    for _ in 0..12 {
        let r = chat(&gw, "k", 10);
        assert_eq!(
            r.status, 200,
            "no request fails while b can serve: {}",
            r.body
        );
        *served
            .entry(r.header("x-tollgate-provider").unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert!(served.get("a").copied().unwrap_or(0) >= 1, "{served:?}");
    assert!(
        served.get("b").copied().unwrap_or(0) >= 6,
        "b takes over once a's budget is spent: {served:?}"
    );
    let spent = gw
        .used("virtual_key:vk/provider:a", "budget_usd")
        .as_f64()
        .unwrap();
    assert!(spent <= 0.05, "{spent}");
}

#[test]
fn concurrent_requests_cannot_overshoot_a_budget() {
    // Each request is estimated at (prompt ≈ 13 + max_tokens 10) tokens ≈ $0.023 and actually
    // uses ≈ $0.016; a $0.1 budget fits 4 estimates. All 40 arrive while the first are in flight.
    let mock = Mock::start(&["--latency", "400ms"]);
    let gw = Gateway::start(&format!(
        "{PRICING}providers:\n{}virtual_keys:\n  - {{id: vk, key: k, budget: {{limit_usd: 0.1, window: 1d}}}}\n",
        provider("p", &mock)
    ));
    let gw = std::sync::Arc::new(gw);
    let handles: Vec<_> = (0..40)
        .map(|_| {
            let gw = gw.clone();
            std::thread::spawn(move || chat(&gw, "k", 10).status)
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let admitted = statuses.iter().filter(|&&s| s == 200).count();
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 402),
        "{statuses:?}"
    );
    assert!(
        (1..=5).contains(&admitted),
        "admitted {admitted} of 40: {statuses:?}"
    );
    let spent = gw.used("virtual_key:vk", "budget_usd").as_f64().unwrap();
    assert!(spent <= 0.1, "spent {spent}");
}

fn stream_body() -> serde_json::Value {
    json!({"model": "m", "stream": true, "max_tokens": 50, "messages": [{"role": "user", "content": "Tell me a story please"}]})
}

#[test]
fn streamed_usage_is_counted_and_the_added_usage_chunk_is_hidden() {
    let mock = Mock::start(&["--stream-chunks", "4"]);
    let gw = Gateway::start(&format!(
        "providers:\n{}virtual_keys:\n  - {{id: vk, key: k, rate_limit: {{tokens: {{limit: 100000, window: 1d}}}}}}\n",
        provider("p", &mock)
    ));
    let r = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", "Bearer k")],
        &stream_body(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !r.body.contains("\"usage\":{"),
        "the client did not ask for usage: {}",
        r.body
    );
    assert!(r.body.trim_end().ends_with("data: [DONE]"));
    let sent: serde_json::Value =
        serde_json::from_str(mock.requests().last().unwrap()["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    // What the provider reported for the same request, asked directly.
    let mut direct_body = stream_body();
    direct_body["stream_options"] = json!({"include_usage": true});
    let direct = post_json(
        &format!("{}/v1/chat/completions", mock.url),
        &[],
        &direct_body,
    );
    let usage_line = direct
        .body
        .lines()
        .find(|l| l.contains("\"usage\":{"))
        .unwrap();
    let usage: serde_json::Value =
        serde_json::from_str(usage_line.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(
        gw.used("virtual_key:vk", "tokens"),
        usage["usage"]["total_tokens"]
    );
}

#[test]
fn an_abandoned_stream_is_still_charged() {
    let mock = Mock::start(&["--stream-chunks", "20", "--chunk-delay", "200ms"]);
    let gw = Gateway::start(&format!(
        "providers:\n{}virtual_keys:\n  - {{id: vk, key: k, rate_limit: {{tokens: {{limit: 100000, window: 1d}}, concurrent: 1}}}}\n",
        provider("p", &mock)
    ));
    let addr = gw.url.trim_start_matches("http://").to_string();
    let body = stream_body().to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer k\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let mut seen = String::new();
    while !seen.contains("data: {") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended before its first event");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    drop(conn);
    let charged = (0..100).find_map(|_| {
        std::thread::sleep(Duration::from_millis(50));
        let used = gw.used("virtual_key:vk", "tokens").as_u64().unwrap();
        (used > 0).then_some(used)
    });
    let charged = charged.expect("the abandoned stream was charged");
    assert!(
        charged >= 6,
        "prompt estimate plus what was sent: {charged}"
    );
    // Its concurrency slot was given back: the next request is admitted.
    let r = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", "Bearer k")],
        &json!({"model": "m", "messages": []}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn usage_survives_a_restart_and_a_reload() {
    let mock = Mock::start(&[]);
    let state_dir = tempfile::tempdir().unwrap();
    let snapshot = state_dir.path().join("state.json");
    let config = |limit: u64| {
        format!(
            "state: {{kind: memory, snapshot_file: {}}}\nproviders:\n{}virtual_keys:\n  - {{id: vk, key: k, rate_limit: {{requests: {{limit: {limit}, window: 1d}}}}}}\n",
            snapshot.display(),
            provider("p", &mock)
        )
    };
    let gw = Gateway::start(&config(3));
    assert_eq!(chat(&gw, "k", 10).status, 200);
    assert_eq!(chat(&gw, "k", 10).status, 200);
    gw.stop();
    assert!(snapshot.exists(), "state saved at shutdown");

    let gw = Gateway::start(&config(3));
    assert_eq!(gw.used("virtual_key:vk", "requests"), json!(2));
    assert_eq!(chat(&gw, "k", 10).status, 200);
    assert_eq!(chat(&gw, "k", 10).status, 429, "the restored usage counts");

    // A reload that raises the limit keeps the usage and applies the new limit at once.
    std::fs::write(
        gw.config_path(),
        format!(
            "server: {{listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}}\n{}",
            config(5)
        ),
    )
    .unwrap();
    gw.signal("HUP");
    let raised = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        gw.usage()
            .iter()
            .any(|c| c["scope"] == "virtual_key:vk" && c["limit"] == 5)
    });
    assert!(raised, "reload applied the new limit");
    assert_eq!(gw.used("virtual_key:vk", "requests"), json!(3));
    assert_eq!(chat(&gw, "k", 10).status, 200);
}

#[test]
fn a_broken_snapshot_refuses_to_start_rather_than_forget_usage() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("state.json");
    std::fs::write(&snapshot, "{not json").unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, format!("server: {{listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}}\nstate: {{kind: memory, snapshot_file: {}}}\n", snapshot.display())).unwrap();
    let out = std::process::Command::new(tollgate_e2e::bin_path("tollgate"))
        .args(["serve", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("state.json"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
