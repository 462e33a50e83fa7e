//! The admin port: metrics, the admin token, config redaction, reload.

use serde_json::json;
use std::time::{Duration, Instant};
use tollgate_e2e::{get, post_json, post_raw, Gateway, Mock};

fn config(mock: &Mock, keys: &str) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, admin_token: adm-token, watch_config: false}}
providers:
  - {{name: mock, kind: openai_compatible, base_url: {}, keys: [{{key: sk-hidden-provider}}]}}
virtual_keys:
{keys}",
        mock.base_url()
    )
}

const ADMIN: [(&str, &str); 1] = [("authorization", "Bearer adm-token")];

fn chat(gw: &Gateway, key: &str) -> u16 {
    post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", &format!("Bearer {key}"))],
        &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .status
}

#[test]
fn metrics_count_requests_and_overhead() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, "  - {id: a, key: key-a}\n"));
    assert_eq!(chat(&gw, "key-a"), 200);
    assert_eq!(chat(&gw, "key-a"), 200);
    assert_eq!(chat(&gw, "nope"), 401);
    let m = get(&format!("{}/metrics", gw.admin_url), &ADMIN);
    assert_eq!(m.status, 200);
    assert!(
        m.body.contains("tollgate_requests_total{endpoint=\"chat\",provider=\"mock\",model=\"m\",status=\"200\"} 2"),
        "{}",
        m.body
    );
    assert!(m.body.contains("status=\"401\"} 1"));
    assert!(m.body.contains("tollgate_overhead_seconds_count 3"));
    assert!(m
        .body
        .contains("# TYPE tollgate_overhead_seconds histogram"));
}

#[test]
fn admin_token_is_required_and_secrets_are_redacted() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, "  - {id: a, key: key-a}\n"));
    assert_eq!(get(&format!("{}/metrics", gw.admin_url), &[]).status, 401);
    assert_eq!(
        get(
            &format!("{}/metrics", gw.admin_url),
            &[("authorization", "Bearer wrong")]
        )
        .status,
        401
    );
    let cfg = get(&format!("{}/admin/config", gw.admin_url), &ADMIN);
    assert_eq!(cfg.status, 200);
    for secret in ["sk-hidden-provider", "key-a", "adm-token"] {
        assert!(!cfg.body.contains(secret), "{secret} in {}", cfg.body);
    }
    assert_eq!(cfg.json()["providers"][0]["name"], "mock");
}

fn wait_until(mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn sighup_adds_a_key_and_a_broken_reload_keeps_serving() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, "  - {id: a, key: key-a}\n"));
    assert_eq!(chat(&gw, "key-b"), 401);

    std::fs::write(
        gw.config_path(),
        config(&mock, "  - {id: a, key: key-a}\n  - {id: b, key: key-b}\n"),
    )
    .unwrap();
    gw.signal("HUP");
    assert!(
        wait_until(|| chat(&gw, "key-b") == 200),
        "key-b never became valid"
    );

    std::fs::write(
        gw.config_path(),
        config(&mock, "  - {id: a, key: key-a, team: ghost}\n"),
    )
    .unwrap();
    let r = post_raw(&format!("{}/admin/reload", gw.admin_url), &ADMIN, b"");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("unknown team `ghost`"), "{}", r.body);
    assert_eq!(chat(&gw, "key-b"), 200, "the previous plan keeps serving");
    let m = get(&format!("{}/metrics", gw.admin_url), &ADMIN).body;
    assert!(
        m.contains("tollgate_config_reloads_total{result=\"ok\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("tollgate_config_reloads_total{result=\"error\"} 1"),
        "{m}"
    );
}

/// The number on the metrics line that starts with `prefix`.
fn metric_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {prefix} in\n{text}"))
}

#[test]
fn metrics_count_tokens_cost_and_provider_latency() {
    let mock = Mock::start(&[]);
    let config = config(&mock, "  - {id: a, key: key-a}\n")
        + "pricing:\n  mock/m: {input: 2.0, cached_input: 1.0, output: 10.0}\n";
    let gw = Gateway::start(&config);
    let url = format!("{}/v1/chat/completions", gw.url);
    let auth = [("authorization", "Bearer key-a")];
    let whole = post_json(
        &url,
        &auth,
        &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(whole.status, 200);
    let u1 = whole.json()["usage"].clone();
    let streamed = post_json(
        &url,
        &auth,
        &json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "hello there"}]}),
    );
    assert_eq!(streamed.status, 200);
    let u2 = streamed
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .find_map(|c| c.get("usage").filter(|u| !u.is_null()).cloned())
        .expect("usage chunk");
    let sum = |field: &str| u1[field].as_f64().unwrap() + u2[field].as_f64().unwrap();
    let (prompt, completion) = (sum("prompt_tokens"), sum("completion_tokens"));

    // The stream's usage is counted when it ends, which may trail the client's last read.
    let deadline = Instant::now() + Duration::from_secs(5);
    let m = loop {
        let m = get(&format!("{}/metrics", gw.admin_url), &ADMIN).body;
        if m.contains("tollgate_ttft_seconds_count{provider=\"mock\"} 1")
            || Instant::now() > deadline
        {
            break m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let labels = "{provider=\"mock\",model=\"m\"";
    assert_eq!(
        metric_value(
            &m,
            &format!("tollgate_tokens_total{labels},kind=\"prompt\"}}")
        ),
        prompt
    );
    assert_eq!(
        metric_value(
            &m,
            &format!("tollgate_tokens_total{labels},kind=\"completion\"}}")
        ),
        completion
    );
    let cost = metric_value(&m, &format!("tollgate_cost_usd_total{labels}}}"));
    let expected = (prompt * 2.0 + completion * 10.0) / 1e6;
    assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}\n{m}");
    assert_eq!(
        metric_value(
            &m,
            "tollgate_upstream_duration_seconds_count{provider=\"mock\"}"
        ),
        2.0
    );
    assert_eq!(
        metric_value(&m, "tollgate_ttft_seconds_count{provider=\"mock\"}"),
        1.0
    );
}

#[test]
fn per_key_labels_are_opt_in() {
    let mock = Mock::start(&[]);
    let keys = "  - {id: a, key: key-a}\n";
    let gw = Gateway::start(&config(&mock, keys));
    assert_eq!(chat(&gw, "key-a"), 200);
    let m = get(&format!("{}/metrics", gw.admin_url), &ADMIN).body;
    assert!(!m.contains("key=\"a\""), "no key label by default:\n{m}");

    let gw = Gateway::start(&(config(&mock, keys) + "metrics: {per_key: true}\n"));
    assert_eq!(chat(&gw, "key-a"), 200);
    let m = get(&format!("{}/metrics", gw.admin_url), &ADMIN).body;
    assert!(
        m.contains("provider=\"mock\",model=\"m\",status=\"200\",key=\"a\"} 1"),
        "{m}"
    );
}
