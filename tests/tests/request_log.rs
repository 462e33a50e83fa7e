//! The request log: one record per request, whatever happened to it, queryable on the admin
//! port (`/admin/logs`, `/admin/spend`), written off the response path, and free of secrets.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use tollgate_e2e::log_traffic::{all_records, ask, chat, send_mixed_traffic, PROVIDER_SECRET};
use tollgate_e2e::{get, Gateway, Mock};

fn config(good: &Mock, bad: &Mock) -> String {
    tollgate_e2e::log_traffic::config("{kind: sqlite, path: logs.db}", good, bad)
}

#[test]
fn mixed_requests_each_leave_one_record_with_the_right_fields() {
    let good = Mock::start(&[]);
    let bad = Mock::start(&["--fail-rate", "1", "--fail-status", "500"]);
    let gw = Gateway::start(&config(&good, &bad));
    let expected = send_mixed_traffic(&gw);

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
