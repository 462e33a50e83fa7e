//! `GET /readyz`: ready (200) while every configured shared store answers — the state Redis,
//! the request log's database, the response cache's Redis — and 503 naming the store that
//! does not, while requests keep being served by each store's failure policy.

use serde_json::Value;
use tollgate_e2e::{get, Gateway, Mock, PostgresServer, RedisServer};

fn readyz(gw: &Gateway) -> (u16, Value) {
    let r = get(&format!("{}/readyz", gw.url), &[]);
    (r.status, r.json())
}

fn providers(mock: &Mock) -> String {
    format!(
        "providers:
  - {{name: a, kind: openai_compatible, base_url: {}, models: ['*']}}
",
        mock.base_url()
    )
}

#[test]
fn the_embedded_defaults_are_ready_with_their_log() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&providers(&mock));
    let (status, body) = readyz(&gw);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    // Memory state and the in-process cache are not shared stores; the SQLite log is checked.
    assert_eq!(body["stores"], serde_json::json!({"logs": "ok"}));
}

#[test]
fn a_redis_outage_makes_the_replica_not_ready_naming_each_store() {
    let mut redis = RedisServer::start();
    let mock = Mock::start(&[]);
    let url = redis.url();
    let gw = Gateway::start(&format!(
        "state: {{kind: redis, url: '{url}', on_error: allow}}
cache: {{mode: exact, store: {{kind: redis, url: '{url}'}}}}
logs: {{kind: none}}
{}",
        providers(&mock)
    ));
    let (status, body) = readyz(&gw);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stores"]["state"], "ok");
    assert_eq!(body["stores"]["cache"], "ok");
    assert!(body["stores"].get("logs").is_none(), "no log configured");

    redis.kill();
    let (status, body) = readyz(&gw);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    for store in ["state", "cache"] {
        let why = body["stores"][store].as_str().unwrap_or_default();
        assert!(why != "ok" && !why.is_empty(), "{store}: {body}");
    }
    // Liveness is not readiness: the process is still up.
    assert_eq!(get(&format!("{}/healthz", gw.url), &[]).status, 200);
}

#[test]
fn a_postgres_log_that_goes_away_and_comes_back() {
    let mut pg = PostgresServer::start();
    let url = pg.create_db("ready");
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&format!(
        "logs: {{kind: postgres, url: '{url}'}}\n{}",
        providers(&mock)
    ));
    let (status, body) = readyz(&gw);
    assert_eq!((status, &body["stores"]["logs"]), (200, &Value::from("ok")));

    pg.stop();
    let (status, body) = readyz(&gw);
    assert_eq!(status, 503, "{body}");
    let why = body["stores"]["logs"].as_str().unwrap_or_default();
    assert!(why != "ok" && !why.is_empty(), "{body}");
    // The password never appears in what the probe says.
    assert!(
        !body.to_string().contains(tollgate_e2e::PG_PASSWORD),
        "{body}"
    );

    pg.restart();
    let (status, body) = readyz(&gw);
    assert_eq!(status, 200, "{body}");
}
