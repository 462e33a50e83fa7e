//! Counters in Redis: gateway replicas share limits exactly; a Redis outage follows on_error.

use serde_json::json;
use std::time::Duration;
use tollgate_e2e::{post_json, Gateway, Mock, RedisServer};

fn config(redis: &RedisServer, mock: &Mock, on_error: &str) -> String {
    format!(
        "state: {{kind: redis, url: \"{}\", on_error: {on_error}}}
pricing: {{m: {{input: 1000, output: 1000}}}}
providers:
  - {{name: p, kind: openai_compatible, base_url: {}, models: [m]}}
virtual_keys:
  - {{id: vk, key: k, rate_limit: {{requests: {{limit: 10, window: 1h}}}}, budget: {{limit_usd: 100, window: 1d}}}}
",
        redis.url(),
        mock.base_url()
    )
}

fn chat(gw: &Gateway) -> tollgate_e2e::Reply {
    post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", "Bearer k")],
        &json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    )
}

#[test]
fn two_gateways_on_one_redis_share_one_limit_exactly() {
    let redis = RedisServer::start();
    let mock = Mock::start(&["--latency", "50ms"]);
    let gws = std::sync::Arc::new([
        Gateway::start(&config(&redis, &mock, "deny")),
        Gateway::start(&config(&redis, &mock, "deny")),
    ]);
    let handles: Vec<_> = (0..24)
        .map(|i| {
            let gws = gws.clone();
            std::thread::spawn(move || chat(&gws[i % 2]))
        })
        .collect();
    let replies: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        10,
        "statuses: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let refused = replies.iter().find(|r| r.status == 429).expect("a refusal");
    assert_eq!(refused.json()["error"]["scope"], "virtual_key:vk");
    assert_eq!(mock.requests().len(), 10);

    // Settles are written off the response path: each replica soon sees all spending.
    for gw in gws.iter() {
        let settled = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(30));
            gw.used("virtual_key:vk", "requests") == json!(10)
                && gw.used("virtual_key:vk", "budget_usd").as_f64().unwrap() > 0.0
        });
        assert!(settled, "{:?}", gw.usage());
    }
}

#[test]
fn redis_outage_denies_or_allows_as_configured() {
    let mut redis = RedisServer::start();
    let mock = Mock::start(&[]);
    let deny = Gateway::start(&config(&redis, &mock, "deny"));
    let allow = Gateway::start(&config(&redis, &mock, "allow"));
    assert_eq!(chat(&deny).status, 200);
    redis.kill();
    let r = chat(&deny);
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (503, "state_unavailable"),
        "{}",
        r.body
    );
    let r = chat(&allow);
    assert_eq!(
        r.status, 200,
        "on_error: allow lets requests through: {}",
        r.body
    );
}

#[test]
fn unreachable_redis_at_start_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(
        &cfg,
        format!("server: {{listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}}\nstate: {{kind: redis, url: \"redis://127.0.0.1:{port}/0\"}}\n"),
    )
    .unwrap();
    let out = std::process::Command::new(tollgate_e2e::bin_path("tollgate"))
        .args(["serve", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}
