//! `GET /readyz`: ready when the plan is loaded (it always is once the server listens) and
//! every configured shared store answers now: the state store (Redis), the request log
//! (SQLite or PostgreSQL), the response cache's Redis and a Redis or Qdrant vector index. A
//! 503 names each store that does not, so a load balancer can take the replica out; the
//! gateway itself keeps serving meanwhile, each store failing the way its config says.

use super::respond::{self, ProxyResponse};
use super::Gateway;
use http::StatusCode;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Longest a store may take to answer before it counts as unreachable: probes run every few
/// seconds and must not pile up behind a store that hangs.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);

pub async fn readyz(gw: &Gateway) -> ProxyResponse {
    let state = async {
        match &gw.redis {
            Some(redis) => {
                Some(bounded(async { redis.ping().await.map_err(|e| e.to_string()) }).await)
            }
            None => None,
        }
    };
    let logs = async {
        if !gw.request_log.enabled() {
            return None;
        }
        let log = gw.request_log.clone();
        // The log's stores answer on blocking connections.
        let ping = async {
            match tokio::task::spawn_blocking(move || log.ping()).await {
                Ok(answer) => answer.map_err(|e| e.to_string()),
                Err(e) => Err(format!("the check did not finish: {e}")),
            }
        };
        Some(bounded(ping).await)
    };
    let cache = tokio::time::timeout(PROBE_DEADLINE, gw.cache.check_stores());
    let (state, logs, cache) = tokio::join!(state, logs, cache);

    let mut stores = Map::new();
    let mut ready = true;
    let mut put = |name: &str, answer: Result<(), String>| {
        ready &= answer.is_ok();
        let shown = answer.map_or_else(Value::from, |()| Value::from("ok"));
        stores.insert(name.to_owned(), shown);
    };
    if let Some(answer) = state {
        put("state", answer);
    }
    if let Some(answer) = logs {
        put("logs", answer);
    }
    match cache {
        Ok(checks) => {
            for (name, failure) in checks {
                put(name, failure.map_or(Ok(()), Err));
            }
        }
        Err(_) => put("cache", Err(late())),
    }
    let (status, word) = if ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    respond::json(
        status,
        json!({"status": word, "stores": stores}).to_string(),
    )
}

async fn bounded(
    check: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::time::timeout(PROBE_DEADLINE, check)
        .await
        .unwrap_or_else(|_| Err(late()))
}

fn late() -> String {
    format!("no answer within {PROBE_DEADLINE:?}")
}
