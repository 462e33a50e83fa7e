//! The request log in a real PostgreSQL: the same answers as SQLite for the same traffic,
//! requests unaffected when PostgreSQL is down, one schema shared by restarts and replicas,
//! and the password kept out of everything the gateway shows.
#![cfg(feature = "postgres")]

use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_e2e::log_traffic::{ask, chat, config, log_pages, metric, send_mixed_traffic};
use tollgate_e2e::{bin_path, get, run_tollgate, Gateway, Mock, PostgresServer, PG_PASSWORD};

fn pg_logs(url: &str) -> String {
    format!("{{kind: postgres, url: '{url}'}}")
}

/// A record without what differs between two gateways serving the same calls: the request
/// id, the arrival time and the measured durations (whether each was measured stays).
fn comparable(r: &Value) -> Value {
    let mut r = r.clone();
    let obj = r.as_object_mut().expect("a record is an object");
    obj.remove("request_id");
    obj.remove("time");
    for field in ["total_us", "upstream_us", "ttft_us", "overhead_us"] {
        let measured = obj.get(field).is_some_and(|v| !v.is_null());
        obj.insert(field.into(), json!(measured));
    }
    r
}

fn comparable_pages(gw: &Gateway, query: &str, limit: u32) -> Vec<Vec<Value>> {
    log_pages(gw, query, limit)
        .iter()
        .map(|page| page.iter().map(comparable).collect())
        .collect()
}

/// Asserts two answers are equal, showing only the first record that differs.
fn assert_same_pages(a: &[Vec<Value>], b: &[Vec<Value>], what: &str) {
    let sizes = |p: &[Vec<Value>]| p.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(sizes(a), sizes(b), "page sizes of {what}");
    for (i, (x, y)) in a.concat().iter().zip(b.concat().iter()).enumerate() {
        assert_eq!(x, y, "record {i} of {what}");
    }
}

fn spend(gw: &Gateway, query: &str) -> Value {
    let r = get(&format!("{}/admin/spend?{query}", gw.admin_url), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// Waits until `/admin/logs` holds `n` records.
fn wait_for_records(gw: &Gateway, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let have = log_pages(gw, "", 1000).concat().len();
        if have >= n {
            assert_eq!(have, n, "more records than requests");
            return;
        }
        assert!(Instant::now() < deadline, "{have} of {n} records logged");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sqlite_and_postgres_answer_the_same_traffic_alike() {
    let pg = PostgresServer::start();
    let url = pg.create_db("parity");
    let good = Mock::start(&[]);
    let bad = Mock::start(&["--fail-rate", "1", "--fail-status", "500"]);
    let lite = Gateway::start(&config("{kind: sqlite, path: logs.db}", &good, &bad));
    let post = Gateway::start(&config(&pg_logs(&url), &good, &bad));
    send_mixed_traffic(&lite);
    send_mixed_traffic(&post);
    wait_for_records(&lite, 100);
    wait_for_records(&post, 100);

    let filters = [
        "",
        "&key=vk-rate&status=429",
        "&key=vk-budget&status=402",
        "&status=4xx",
        "&status=ok",
        "&status=error",
        "&status=200",
        "&model=m",
        "&model=fb",
        "&provider=good",
        "&provider=bad",
        "&cache=hit-exact",
        "&cache=miss",
        "&error_type=guardrail_blocked",
        "&team=t1",
        "&customer=c1",
        "&min_cost=0.01",
        "&key=vk-ok&status=ok&min_cost=0.000001",
    ];
    for filter in filters {
        for limit in [7, 1000] {
            let a = comparable_pages(&lite, filter, limit);
            let b = comparable_pages(&post, filter, limit);
            assert_same_pages(&a, &b, &format!("/admin/logs?limit={limit}{filter}"));
        }
    }
    let every = comparable_pages(&post, "", 1000).concat();
    assert_eq!(every.len(), 100);
    assert!(every.iter().any(|r| r["stream"] == true));
    assert!(every
        .iter()
        .any(|r| r["attempts"].as_array().unwrap().len() == 2));

    // Time ranges, each gateway cut at the times of its own 30th and 70th newest record.
    let cut = |gw: &Gateway| -> (String, String) {
        let records = log_pages(gw, "", 1000).concat();
        let time = |i: usize| records[i]["time"].as_str().unwrap().to_string();
        (time(70), time(30))
    };
    let (a_since, a_until) = cut(&lite);
    let (b_since, b_until) = cut(&post);
    for (qa, qb) in [
        (format!("&since={a_since}"), format!("&since={b_since}")),
        (format!("&until={a_until}"), format!("&until={b_until}")),
        (
            format!("&since={a_since}&until={a_until}&status=ok"),
            format!("&since={b_since}&until={b_until}&status=ok"),
        ),
    ] {
        let a = comparable_pages(&lite, &qa, 9);
        let b = comparable_pages(&post, &qb, 9);
        assert!(!a.concat().is_empty(), "{qa}");
        assert_same_pages(&a, &b, &format!("{qa} vs {qb}"));
    }
    // Spend over the same cut: the same rows and totals.
    for group in ["key", "model"] {
        let a = spend(
            &lite,
            &format!("group_by={group}&since={a_since}&until={a_until}"),
        );
        let b = spend(
            &post,
            &format!("group_by={group}&since={b_since}&until={b_until}"),
        );
        assert_eq!(a["rows"], b["rows"], "group_by={group} over a cut");
        assert_eq!(a["total"], b["total"], "group_by={group} over a cut");
    }

    for group in ["key", "team", "customer", "model", "provider"] {
        for range in ["", "&since=2020-01-01T00:00:00Z&until=2100-01-01T00:00:00Z"] {
            let query = format!("group_by={group}{range}");
            let (a, b) = (spend(&lite, &query), spend(&post, &query));
            assert_eq!(a, b, "/admin/spend?{query}");
            assert_eq!(a["total"]["requests"], 100, "{a}");
        }
    }
    // Requests without a team are a group of their own, shown as null, in both.
    let by_team = spend(&post, "group_by=team");
    assert!(
        by_team["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["group"].is_null()),
        "{by_team}"
    );
}

#[test]
fn postgres_down_at_start_or_mid_run_never_fails_a_request() {
    let mut pg = PostgresServer::start();
    let url = pg.create_db("outage");
    pg.stop();
    let good = Mock::start(&[]);
    let bad = Mock::start(&[]);
    // Down at start: the gateway serves anyway.
    let gw = Gateway::start(&config(&pg_logs(&url), &good, &bad));
    let mut sent = 0u64;
    let send = |n: usize| {
        for i in 0..n {
            let r = chat(&gw, "secret-ok-key", ask("m", &format!("request {i}")));
            assert_eq!(r.status, 200, "{}", r.body);
        }
        n as u64
    };
    sent += send(20);
    // Every record is either written or counted as lost; nothing silently disappears.
    let settle = |gw: &Gateway, sent: u64, logged: &dyn Fn() -> u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lost = metric(gw, "tollgate_log_failed_records_total")
                + metric(gw, "tollgate_log_dropped_total");
            let written = logged();
            if written + lost == sent {
                return (written, lost);
            }
            assert!(
                Instant::now() < deadline,
                "{written} written + {lost} lost != {sent} sent"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let (_, lost) = settle(&gw, sent, &|| 0);
    assert_eq!(lost, 20);
    assert!(metric(&gw, "tollgate_log_write_errors_total") >= 1);
    // The admin API says what is wrong, without the password.
    let r = get(&format!("{}/admin/logs", gw.admin_url), &[]);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("PostgreSQL"), "{}", r.body);
    assert!(!r.body.contains(PG_PASSWORD), "{}", r.body);

    // Back up: the gateway reconnects on its own (after its backoff).
    pg.restart();
    let logged = || log_pages(&gw, "", 1000).concat().len() as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while logged() == 0 {
        assert!(Instant::now() < deadline, "never reconnected");
        sent += send(1);
        std::thread::sleep(Duration::from_millis(200));
    }
    sent += send(10);
    let (written, _) = settle(&gw, sent, &logged);
    assert!(written >= 10, "{written}");

    // Down mid-run: requests go on; their records are counted as lost.
    pg.stop();
    let lost_before = metric(&gw, "tollgate_log_failed_records_total");
    sent += send(15);
    let (after, lost) = settle(&gw, sent, &|| written);
    assert_eq!(after, written);
    assert!(lost >= lost_before + 15, "{lost}");
    pg.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    while logged() <= written {
        assert!(Instant::now() < deadline, "never reconnected");
        sent += send(1);
        std::thread::sleep(Duration::from_millis(200));
    }
    settle(&gw, sent, &logged);

    // The password is nowhere the gateway shows or writes.
    let shown = get(&format!("{}/admin/config", gw.admin_url), &[]).body;
    assert!(
        shown.contains(&format!("127.0.0.1:{}/outage", pg.port)),
        "{shown}"
    );
    assert!(shown.contains("tollgate:[REDACTED]@"), "{shown}");
    let mut everything = shown;
    everything.push_str(&get(&format!("{}/metrics", gw.admin_url), &[]).body);
    everything.push_str(&gw.stop_and_output());
    assert!(
        everything.contains("cannot reach PostgreSQL"),
        "{everything}"
    );
    assert!(!everything.contains(PG_PASSWORD), "{everything}");
}

#[test]
fn replicas_share_one_schema_and_a_restart_keeps_the_records() {
    let pg = PostgresServer::start();
    let url = pg.create_db("shared");
    let good = Mock::start(&[]);
    let bad = Mock::start(&[]);
    let text = config(&pg_logs(&url), &good, &bad);
    // Two replicas starting at once on an empty database: one migrates, both run.
    let starting: Vec<_> = (0..2)
        .map(|_| {
            let text = text.clone();
            std::thread::spawn(move || Gateway::start(&text))
        })
        .collect();
    let replicas: Vec<Gateway> = starting.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, gw) in replicas.iter().enumerate() {
        for j in 0..3 {
            let r = chat(
                gw,
                "secret-ok-key",
                ask("m", &format!("replica {i} call {j}")),
            );
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    // One log: each replica sees the other's records.
    wait_for_records(&replicas[0], 6);
    wait_for_records(&replicas[1], 6);
    let migrations = || {
        pg.psql(
            "shared",
            "SELECT count(*), max(version) FROM tollgate_schema_migrations",
        )
    };
    assert_eq!(migrations(), "3|3", "every migration, applied once");
    for gw in replicas {
        gw.stop();
    }

    // A restart finds the schema in place and the records where they were.
    let gw = Gateway::start(&text);
    wait_for_records(&gw, 6);
    assert_eq!(
        chat(&gw, "secret-ok-key", ask("m", "after restart")).status,
        200
    );
    wait_for_records(&gw, 7);
    assert_eq!(migrations(), "3|3", "every migration, applied once");
    gw.stop();

    // A schema from a newer tollgate is refused at start, not written into.
    pg.psql(
        "shared",
        "INSERT INTO tollgate_schema_migrations (version) VALUES (99)",
    );
    let (ok, output) = serve_until_exit(&text);
    assert!(!ok, "the gateway started on a newer schema: {output}");
    assert!(output.contains("schema version 99"), "{output}");
    assert!(!output.contains(PG_PASSWORD), "{output}");

    // A server that answers "no" will not change its mind: an error at start too, where the
    // operator sees it, rather than a log that silently never fills.
    for (wrong, says) in [
        (
            text.replace(PG_PASSWORD, "not-the-password"),
            "password authentication failed",
        ),
        (text.replace("/shared'", "/nosuchdb'"), "does not exist"),
    ] {
        let (ok, output) = serve_until_exit(&wrong);
        assert!(!ok, "the gateway started: {output}");
        assert!(output.contains(says), "{output}");
        assert!(!output.contains("not-the-password"), "{output}");
    }
}

#[test]
fn a_nul_character_does_not_cost_the_batch_it_arrives_in() {
    let pg = PostgresServer::start();
    let url = pg.create_db("nul");
    let good = Mock::start(&[]);
    let bad = Mock::start(&[]);
    let gw = Gateway::start(&config(&pg_logs(&url), &good, &bad));
    // PostgreSQL text cannot hold NUL; SQLite's can. Sent back to back so they share a batch.
    let odd = chat(&gw, "secret-ok-key", ask("m\u{0}x", "hi"));
    assert_ne!(odd.status, 200, "{}", odd.body);
    assert_eq!(chat(&gw, "secret-ok-key", ask("m", "hi")).status, 200);
    wait_for_records(&gw, 2);
    let records = log_pages(&gw, "", 10).concat();
    assert_eq!(
        records[1]["requested_model"], "m\u{FFFD}x",
        "{}",
        records[1]
    );
    assert_eq!(records[0]["status"], 200);
    assert_eq!(metric(&gw, "tollgate_log_failed_records_total"), 0);
}

#[test]
fn check_refuses_postgres_settings_that_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let check = |logs: &str| -> (bool, String) {
        let path = dir.path().join("tollgate.yaml");
        std::fs::write(&path, format!("logs: {logs}\n")).unwrap();
        let out = run_tollgate(&["check", "-c", path.to_str().unwrap()]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = check("{kind: postgres, url: 'postgres://tg:pw-1@127.0.0.1:5432/logs'}");
    assert!(ok, "{text}");
    for (logs, says) in [
        ("{kind: postgres}", "needs `url"),
        (
            "{kind: postgres, url: 'mysql://tg:pw-1@db/logs'}",
            "not a PostgreSQL URL",
        ),
        (
            "{kind: postgres, url: 'postgres://tg:pw-1@db:port/logs'}",
            "invalid PostgreSQL URL",
        ),
        (
            "{kind: postgres, url: 'postgres://tg:pw-1@db/logs?sslmode=require'}",
            "TLS",
        ),
        (
            "{kind: postgres, url: 'postgres://tg:pw-1@db/logs', path: x.db}",
            "`path` is for `kind: sqlite`",
        ),
        (
            "{kind: sqlite, url: 'postgres://tg:pw-1@db/logs'}",
            "`url` is for `kind: postgres`",
        ),
        (
            "{kind: postgres, url: 'postgres://tg:pw-1@db/logs', pool: 5}",
            "unknown field `pool`",
        ),
    ] {
        let (ok, text) = check(logs);
        assert!(!ok, "{logs} passed: {text}");
        assert!(text.contains(says), "{logs}: {text}");
        assert!(text.contains("tollgate.yaml:1:"), "{logs}: {text}");
        assert!(!text.contains("pw-1"), "{logs} showed the password: {text}");
    }
}

/// Runs `tollgate serve` on `config` expecting it to exit; returns whether it exited
/// successfully and what it printed. Killed (by PID) if it is still running after 20 s.
fn serve_until_exit(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(
        &path,
        format!("server: {{listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}}\n{config}"),
    )
    .unwrap();
    let mut child = Command::new(bin_path("tollgate"))
        .args(["serve", "-c", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tollgate");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("collect output");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
