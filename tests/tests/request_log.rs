//! The request log: one record per request, whatever happened to it, queryable on the admin
//! port (`/admin/logs`, `/admin/spend`), written off the response path, and free of secrets.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_e2e::{get, post_json, Gateway, Mock, Reply};

/// $1,000 per 1M tokens ($0.001 a token), so the budget key runs out within a few requests.
const PRICING: &str = "pricing: {m: {input: 1000, output: 1000}}\n";
const PROVIDER_SECRET: &str = "sk-provider-never-logged";

fn config(good: &Mock, bad: &Mock) -> String {
    format!(
        "logs: {{kind: sqlite, path: logs.db}}
{PRICING}providers:
  - {{name: good, kind: openai_compatible, base_url: {}, models: [m], keys: [{{key: {PROVIDER_SECRET}}}]}}
  - {{name: bad, kind: openai_compatible, base_url: {}, models: [m], retries: {{max: 0}}}}
routing:
  aliases: {{fb: [bad/m, good/m]}}
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

fn chat(gw: &Gateway, key: &str, body: Value) -> Reply {
    post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", &format!("Bearer {key}"))],
        &body,
    )
}

fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": text}]})
}

/// Every record `/admin/logs` holds, following `next_cursor`, waiting until there are `n`.
fn all_records(gw: &Gateway, query: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut records = Vec::new();
        let mut cursor = String::new();
        loop {
            let url = format!("{}/admin/logs?limit=37{query}{cursor}", gw.admin_url);
            let reply = get(&url, &[]);
            assert_eq!(reply.status, 200, "{}", reply.body);
            let page = reply.json();
            records.extend(page["records"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        if records.len() >= n || Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn mixed_requests_each_leave_one_record_with_the_right_fields() {
    let good = Mock::start(&[]);
    let bad = Mock::start(&["--fail-rate", "1", "--fail-status", "500"]);
    let gw = Gateway::start(&config(&good, &bad));
    let mut expected: BTreeMap<String, (u16, Option<&str>)> = BTreeMap::new();
    let mut send = |key: &str, body: Value, want: (u16, Option<&'static str>)| {
        let r = chat(&gw, key, body);
        assert_eq!(r.status, want.0, "{}", r.body);
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
        let r = chat(&gw, "secret-budget-key", ask("m", "spend"));
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

    let records = all_records(&gw, "", 100);
    assert_eq!(records.len(), 100, "one record per request");
    let by_id: BTreeMap<&str, &Value> = records
        .iter()
        .map(|r| (r["request_id"].as_str().unwrap(), r))
        .collect();
    for (id, (status, error)) in &expected {
        let r = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("no record for {id}"));
        assert_eq!(r["status"], *status, "{r}");
        assert_eq!(r["error_type"].as_str(), *error, "{r}");
        assert_eq!(r["endpoint"], "chat", "{r}");
        if *status == 200 && r["cache"] != "hit-exact" {
            assert_eq!(r["provider"], "good", "{r}");
            assert!(r["prompt_tokens"].as_u64().unwrap() > 0, "{r}");
            assert!(r["cost_usd"].as_f64().unwrap() > 0.0, "{r}");
            assert!(r["total_us"].as_u64().unwrap() >= r["overhead_us"].as_u64().unwrap());
        }
    }
    let of_kind = |f: &dyn Fn(&Value) -> bool| records.iter().filter(|r| f(r)).count();
    assert_eq!(of_kind(&|r| r["stream"] == true), 10);
    assert_eq!(of_kind(&|r| r["cache"] == "hit-exact"), 4);
    assert_eq!(of_kind(&|r| r["cache"] == "miss"), 1);
    let hit = records.iter().find(|r| r["cache"] == "hit-exact").unwrap();
    assert_eq!(hit["cost_usd"], 0.0, "{hit}");
    assert_eq!(hit["prompt_tokens"], 0, "{hit}");
    assert_eq!(hit["attempts"], json!([]), "a hit calls no provider: {hit}");
    assert_eq!(of_kind(&|r| r["requested_model"] == "fb"), 10);
    let fallback = records
        .iter()
        .find(|r| r["requested_model"] == "fb")
        .unwrap();
    let attempts = fallback["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["provider"], "bad", "{fallback}");
    assert_eq!(attempts[0]["status"], 500, "{fallback}");
    assert_eq!(attempts.last().unwrap()["provider"], "good", "{fallback}");
    let blocked = records
        .iter()
        .find(|r| r["error_type"] == "guardrail_blocked")
        .unwrap();
    assert_eq!(
        blocked["guardrails"],
        json!([{"name": "no-secrets", "action": "block"}])
    );
    let ok = records.iter().find(|r| r["key_id"] == "vk-ok").unwrap();
    assert_eq!(
        (ok["team"].as_str(), ok["customer"].as_str()),
        (Some("t1"), Some("c1"))
    );

    // Filters agree with the records.
    let rate = all_records(&gw, "&key=vk-rate&status=429", 10);
    assert_eq!(rate.len(), 10);
    let blocked = all_records(&gw, "&error_type=guardrail_blocked", 10);
    assert_eq!(blocked.len(), 10);

    // Spend by key adds up to the records, and to the governance counters.
    let spend = get(&format!("{}/admin/spend?group_by=key", gw.admin_url), &[]);
    assert_eq!(spend.status, 200, "{}", spend.body);
    let spend = spend.json();
    let row = spend["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == "vk-budget")
        .expect("a vk-budget row")
        .clone();
    let logged: f64 = records
        .iter()
        .filter(|r| r["key_id"] == "vk-budget")
        .map(|r| r["cost_usd"].as_f64().unwrap())
        .sum();
    assert!(
        (row["cost_usd"].as_f64().unwrap() - logged).abs() < 1e-9,
        "{row}"
    );
    assert_eq!(row["requests"], 17);
    let used = gw.used("virtual_key:vk-budget", "budget_usd");
    assert!(
        (used.as_f64().unwrap() - logged).abs() < 1e-6,
        "counter {used} vs log {logged}"
    );
}

#[test]
fn bad_query_parameters_are_explained() {
    let good = Mock::start(&[]);
    let bad = Mock::start(&[]);
    let gw = Gateway::start(&config(&good, &bad));
    let r = get(&format!("{}/admin/logs?since=yesterday", gw.admin_url), &[]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("since"), "{}", r.body);
    let r = get(
        &format!("{}/admin/spend?group_by=planet", gw.admin_url),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("group_by"), "{}", r.body);
}

#[test]
fn a_stalled_log_store_does_not_hold_requests_and_nothing_secret_is_written() {
    let good = Mock::start(&[]);
    let bad = Mock::start(&[]);
    let gw = Gateway::start(&config(&good, &bad));
    assert_eq!(chat(&gw, "secret-ok-key", ask("m", "warm up")).status, 200);
    let db = gw.dir.path().join("logs.db");
    assert_eq!(all_records(&gw, "", 1).len(), 1);

    // Another process holds the database's write lock: the writer cannot insert.
    let mut locker = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect({:?}, isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             sys.stdin.readline()\n\
             c.execute('COMMIT')\n",
            db.display().to_string()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(locker.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    // Every request is answered while the store is stalled.
    for i in 0..30 {
        assert_eq!(
            chat(
                &gw,
                "secret-ok-key",
                ask("m", &format!("while stalled {i}"))
            )
            .status,
            200
        );
    }
    drop(locker.stdin.take());
    locker.wait().unwrap();
    // Once the lock is gone, the queued records land.
    assert_eq!(all_records(&gw, "", 31).len(), 31);

    // No virtual key secret or provider key in the log, the metrics or the gateway's output.
    let mut written = std::fs::read(&db).unwrap();
    for suffix in ["-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(format!("{}{suffix}", db.display())) {
            written.extend(bytes);
        }
    }
    written.extend(
        get(&format!("{}/metrics", gw.admin_url), &[])
            .body
            .into_bytes(),
    );
    written.extend(
        get(&format!("{}/admin/logs?limit=1000", gw.admin_url), &[])
            .body
            .into_bytes(),
    );
    let stderr = gw.stop_and_output();
    written.extend(stderr.into_bytes());
    let text = String::from_utf8_lossy(&written);
    for secret in ["secret-ok-key", PROVIDER_SECRET] {
        assert!(!text.contains(secret), "`{secret}` was written somewhere");
    }
}
