//! Mixed traffic for the request-log tests: one config and one sequence of requests that
//! leaves every kind of record (answered, streamed, rate limited, blocked by a guardrail,
//! fallen back, cached, over budget), and a reader that pages through `/admin/logs`.

use crate::{get, post_json, Gateway, Mock, Reply};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// $1,000 per 1M tokens ($0.001 a token), so the budget key runs out within a few requests.
pub const PRICING: &str = "pricing: {m: {input: 1000, output: 1000}}\n";
pub const PROVIDER_SECRET: &str = "sk-provider-never-logged";

/// The gateway config the traffic is meant for, with `logs` as the `logs:` value
/// (e.g. `{kind: sqlite, path: logs.db}`). `bad` answers 500 to everything and is reached
/// only through the `fb` alias (its model has a name of its own, so a bare `m` never goes
/// there), and its circuit breaker never opens: every fallback tries it first, and the same
/// calls leave the same records whatever their timing.
pub fn config(logs: &str, good: &Mock, bad: &Mock) -> String {
    format!(
        "logs: {logs}
{PRICING}providers:
  - {{name: good, kind: openai_compatible, base_url: {}, models: [m], keys: [{{key: {PROVIDER_SECRET}}}]}}
  - {{name: bad, kind: openai_compatible, base_url: {}, models: [m-bad], retries: {{max: 0}}, health: {{min_requests: 1000000}}}}
routing:
  aliases: {{fb: [bad/m-bad, good/m]}}
guardrails:
  - {{name: no-secrets, detect: {{regex: ['forbidden-[0-9]+']}}, action: block}}
teams: [{{id: t1, customer: c1}}]
customers: [{{id: c1}}]
virtual_keys:
  - {{id: vk-ok, key: secret-ok-key, team: t1}}
  - {{id: vk-rate, key: secret-rate-key, rate_limit: {{requests: {{limit: 3, window: 1m}}}}}}
  - {{id: vk-budget, key: secret-budget-key, budget: {{limit_usd: 0.05, window: 1d}}}}
",
        good.base_url(),
        bad.base_url()
    )
}

pub fn chat(gw: &Gateway, key: &str, body: Value) -> Reply {
    post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", &format!("Bearer {key}"))],
        &body,
    )
}

pub fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": text}]})
}

/// The status and error type each request was answered with, by request id.
pub type Expected = BTreeMap<String, (u16, Option<&'static str>)>;

/// Sends 100 requests of every kind, one after another, and checks each answer. The same
/// calls against two fresh gateways get the same answers in the same order.
pub fn send_mixed_traffic(gw: &Gateway) -> Expected {
    let mut expected = Expected::new();
    let mut send = |key: &str, body: Value, want: (u16, Option<&'static str>)| {
        let r = chat(gw, key, body.clone());
        assert_eq!(r.status, want.0, "{key} {body}: {}", r.body);
        let id = r
            .header("x-tollgate-request-id")
            .expect("request id")
            .to_string();
        expected.insert(id, want);
    };
    for i in 0..35 {
        send(
            "secret-ok-key",
            ask("m", &format!("hello {i}")),
            (200, None),
        );
    }
    for i in 0..10 {
        let mut body = ask("m", &format!("stream {i}"));
        body["stream"] = json!(true);
        send("secret-ok-key", body, (200, None));
    }
    for _ in 0..3 {
        send("secret-rate-key", ask("m", "hi"), (200, None));
    }
    for _ in 0..10 {
        send(
            "secret-rate-key",
            ask("m", "hi"),
            (429, Some("rate_limited")),
        );
    }
    for i in 0..10 {
        send(
            "secret-ok-key",
            ask("m", &format!("forbidden-{i}")),
            (403, Some("guardrail_blocked")),
        );
    }
    for _ in 0..10 {
        send("secret-ok-key", ask("fb", "fall back"), (200, None));
    }
    // One answer cached at the caller's request, then served four times from the cache.
    for _ in 0..5 {
        let r = post_json(
            &format!("{}/v1/chat/completions", gw.url),
            &[
                ("authorization", "Bearer secret-ok-key"),
                ("x-tollgate-cache", "exact"),
            ],
            &ask("m", "cache me"),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let id = r.header("x-tollgate-request-id").unwrap().to_string();
        expected.insert(id, (200, None));
    }
    // The budget key: allowed while the budget lasts, then 402.
    let mut budget_refusals = 0;
    for _ in 0..17 {
        let r = chat(gw, "secret-budget-key", ask("m", "spend"));
        let id = r.header("x-tollgate-request-id").unwrap().to_string();
        let want = match r.status {
            200 => (200, None),
            402 => {
                budget_refusals += 1;
                (402, Some("budget_exceeded"))
            }
            other => panic!("unexpected {other}: {}", r.body),
        };
        expected.insert(id, want);
    }
    assert!(budget_refusals > 0, "the budget never ran out");
    assert_eq!(expected.len(), 100);
    expected
}

/// Every record `/admin/logs?limit=37{query}` holds, following `next_cursor`, waiting (up to
/// 10 s) until there are at least `n`.
pub fn all_records(gw: &Gateway, query: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records: Vec<Value> = log_pages(gw, query, 37).into_iter().flatten().collect();
        if records.len() >= n || Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pages of `/admin/logs?limit={limit}{query}`, following `next_cursor` to the end.
pub fn log_pages(gw: &Gateway, query: &str, limit: u32) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let url = format!("{}/admin/logs?limit={limit}{query}{cursor}", gw.admin_url);
        let reply = get(&url, &[]);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let page = reply.json();
        pages.push(page["records"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return pages,
        }
    }
}

/// The value of an unlabelled counter on `/metrics`.
pub fn metric(gw: &Gateway, name: &str) -> u64 {
    let text = get(&format!("{}/metrics", gw.admin_url), &[]).body;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics:\n{text}"))
}
