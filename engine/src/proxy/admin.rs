//! The admin listener: metrics, reload, effective config. Bearer `server.admin_token` when set.

use super::respond::{self, ProxyResponse};
use super::Gateway;
use crate::admission::limits::kind_label;
use crate::admission::limits::Ledger;
use crate::error::{ApiError, ErrorType};
use crate::reliability::health::{Circuit, WindowStats};
use crate::reqlog::{LogQuery, QueryError, RequestLog, SpendQuery};
use crate::state::{CounterKey, LimitKind, Usage};
use crate::telemetry::escape_label as escape;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub async fn route(gw: &Gateway, req: Request<Incoming>) -> ProxyResponse {
    if !authorized(gw, &req) {
        return respond::error(
            &ApiError::new(
                ErrorType::Unauthorized,
                "admin endpoints need `Authorization: Bearer <server.admin_token>`",
            ),
            None,
        );
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => respond::text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics_text(gw),
        ),
        (&Method::GET, "/admin/health") => respond::json(StatusCode::OK, health(gw)),
        (&Method::GET, "/admin/usage") => match usage(gw).await {
            Ok(body) => respond::json(StatusCode::OK, body),
            Err(e) => respond::error(&ApiError::new(ErrorType::StateUnavailable, e), None),
        },
        (&Method::GET, "/admin/logs") => {
            let query = req.uri().query().unwrap_or("").to_owned();
            request_log_answer(gw, move |log| {
                let q = LogQuery::from_query_string(&query).map_err(Refused::Query)?;
                let page = log.query(&q).map_err(Refused::Store)?;
                serde_json::to_vec(&page).map_err(|e| Refused::Encode(e.to_string()))
            })
            .await
        }
        (&Method::GET, "/admin/spend") => {
            let query = req.uri().query().unwrap_or("").to_owned();
            request_log_answer(gw, move |log| {
                let q = SpendQuery::from_query_string(&query).map_err(Refused::Query)?;
                let report = log.spend(&q).map_err(Refused::Store)?;
                serde_json::to_vec(&report).map_err(|e| Refused::Encode(e.to_string()))
            })
            .await
        }
        (&Method::GET, "/admin/config") => {
            respond::json(StatusCode::OK, gw.plan.load().redacted_config.clone())
        }
        (&Method::POST, "/admin/reload") => match gw.reload() {
            Ok(()) => respond::json(StatusCode::OK, r#"{"status":"reloaded"}"#),
            Err(errors) => {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                respond::error(
                    &ApiError::new(
                        ErrorType::InvalidRequest,
                        format!(
                            "config rejected, the previous plan keeps serving: {}",
                            list.join("; ")
                        ),
                    )
                    .with("errors", list.into()),
                    None,
                )
            }
        },
        (&Method::GET, "/healthz") => respond::json(StatusCode::OK, r#"{"status":"ok"}"#),
        (_, path) => respond::error(
            &ApiError::new(ErrorType::NotFound, format!("no admin endpoint at {path}")),
            None,
        ),
    }
}

fn authorized(gw: &Gateway, req: &Request<Incoming>) -> bool {
    let plan = gw.plan.load();
    let Some(expected) = plan.admin_token_digest else {
        return true;
    };
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    digest.ct_eq(&expected).into()
}

/// Every counter of the plan: `{"counters": [{scope, kind, window, used, reserved, limit,
/// resets_at}]}`, budgets in dollars.
async fn usage(gw: &Gateway) -> Result<Vec<u8>, String> {
    let plan = gw.plan.load_full();
    let now = crate::state::unix_now();
    let usages: Vec<Usage> = match gw.ledger(&plan) {
        Ledger::Memory => plan
            .all_limits
            .iter()
            .map(|l| l.counter.usage_at(now))
            .collect(),
        Ledger::Redis(store, _) => {
            let keys: Vec<CounterKey> = plan
                .all_limits
                .iter()
                .map(|l| CounterKey {
                    scope: l.scope.clone(),
                    kind: l.kind,
                    window: l.window,
                })
                .collect();
            store
                .usage_many(&keys, now)
                .await
                .map_err(|e| e.to_string())?
        }
    };
    let counters: Vec<serde_json::Value> = plan
        .all_limits
        .iter()
        .zip(usages)
        .map(|(l, u)| {
            let amount = |v: u64| -> serde_json::Value {
                if l.kind == LimitKind::Budget {
                    (v as f64 / 1e6).into()
                } else {
                    v.into()
                }
            };
            let resets_at = l
                .counter
                .resets_at_unix(u.window_id)
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            serde_json::json!({
                "scope": &*l.scope,
                "kind": kind_label(l.kind),
                "window": l.window.map(|w| w.to_string()),
                "used": amount(u.used),
                "reserved": amount(u.reserved),
                "limit": amount(l.limit),
                "resets_at": resets_at,
            })
        })
        .collect();
    Ok(serde_json::to_vec(&serde_json::json!({ "counters": counters })).unwrap_or_default())
}

/// The metrics, plus provider and key health (which live in the plan, not in `Metrics`).
/// Why the request log could not answer an admin query.
enum Refused {
    Query(QueryError),
    Store(crate::reqlog::Error),
    Encode(String),
}

/// Runs a request-log read on the blocking pool (SQLite blocks) and answers with its JSON.
async fn request_log_answer(
    gw: &Gateway,
    read: impl FnOnce(&RequestLog) -> Result<Vec<u8>, Refused> + Send + 'static,
) -> ProxyResponse {
    if !gw.request_log.enabled() {
        return respond::error(
            &ApiError::new(
                ErrorType::NotFound,
                "the request log is off (logs.kind: none)",
            ),
            None,
        );
    }
    let log = gw.request_log.clone();
    let answer = tokio::task::spawn_blocking(move || read(&log)).await;
    match answer {
        Ok(Ok(body)) => respond::json(StatusCode::OK, body),
        Ok(Err(Refused::Query(e))) => respond::error(
            &ApiError::new(ErrorType::InvalidRequest, e.to_string()).with("param", e.param.into()),
            None,
        ),
        Ok(Err(Refused::Store(e))) => {
            tracing::warn!(error = %e, "request log query failed");
            respond::error(
                &ApiError::new(ErrorType::StateUnavailable, e.to_string()),
                None,
            )
        }
        Ok(Err(Refused::Encode(e))) => respond::error(
            &ApiError::new(
                ErrorType::StateUnavailable,
                format!("request log answer: {e}"),
            ),
            None,
        ),
        Err(e) => respond::error(
            &ApiError::new(
                ErrorType::StateUnavailable,
                format!("request log query failed: {e}"),
            ),
            None,
        ),
    }
}

fn metrics_text(gw: &Gateway) -> String {
    use std::fmt::Write;
    let mut out = gw.metrics.render();
    let c = gw.cache.metrics();
    let _ = writeln!(
        out,
        "# HELP tollgate_cache_total Response-cache lookups by result.\n\
         # TYPE tollgate_cache_total counter\n\
         tollgate_cache_total{{result=\"hit-exact\"}} {}\n\
         tollgate_cache_total{{result=\"hit-semantic\"}} {}\n\
         tollgate_cache_total{{result=\"miss\"}} {}\n\
         tollgate_cache_total{{result=\"error\"}} {}\n\
         # HELP tollgate_cache_stores_total Answers written to the response cache.\n\
         # TYPE tollgate_cache_stores_total counter\ntollgate_cache_stores_total {}",
        c.hits_exact.load(std::sync::atomic::Ordering::Relaxed),
        c.hits_semantic.load(std::sync::atomic::Ordering::Relaxed),
        c.misses.load(std::sync::atomic::Ordering::Relaxed),
        c.errors.load(std::sync::atomic::Ordering::Relaxed),
        c.stores.load(std::sync::atomic::Ordering::Relaxed)
    );
    if let Some(layer) = gw.cache.semantic() {
        // A shared (Redis) index has no local size to report.
        if let Some(entries) = layer.index_len() {
            let _ = writeln!(
                out,
                "# HELP tollgate_cache_index_entries Vectors in the semantic cache's index.\n\
                 # TYPE tollgate_cache_index_entries gauge\ntollgate_cache_index_entries {entries}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tollgate_cache_embedding_seconds Time to embed one batch of prompts.\n\
             # TYPE tollgate_cache_embedding_seconds histogram"
        );
        layer
            .embedding_latency
            .render(&mut out, "tollgate_cache_embedding_seconds", "");
    }
    let log = gw.request_log.counters();
    let _ = writeln!(
        out,
        "# HELP tollgate_log_dropped_total Request-log records dropped because the write queue was full.\n\
         # TYPE tollgate_log_dropped_total counter\ntollgate_log_dropped_total {}\n\
         # HELP tollgate_log_write_errors_total Request-log batches the store refused.\n\
         # TYPE tollgate_log_write_errors_total counter\ntollgate_log_write_errors_total {}\n\
         # HELP tollgate_log_failed_records_total Request-log records lost with a batch the store refused.\n\
         # TYPE tollgate_log_failed_records_total counter\ntollgate_log_failed_records_total {}",
        log.dropped.load(std::sync::atomic::Ordering::Relaxed),
        log.store_errors.load(std::sync::atomic::Ordering::Relaxed),
        log.failed_records.load(std::sync::atomic::Ordering::Relaxed)
    );
    let report = gw.health_report(&gw.plan.load());
    out.push_str("# HELP tollgate_provider_healthy 1 while a provider's circuit is closed (half-open and open: 0).\n");
    out.push_str("# TYPE tollgate_provider_healthy gauge\n");
    for p in &report {
        let up = u8::from(p.circuit == Circuit::Closed);
        let name = escape(&p.name);
        let _ = writeln!(out, "tollgate_provider_healthy{{provider=\"{name}\"}} {up}");
    }
    out.push_str("# HELP tollgate_provider_key_healthy 1 while a provider key is in use (0: benched or probing).\n");
    out.push_str("# TYPE tollgate_provider_key_healthy gauge\n");
    for p in &report {
        for k in &p.keys {
            let (key, up) = (&k.name, u8::from(k.circuit == Circuit::Closed));
            let _ = writeln!(
                out,
                "tollgate_provider_key_healthy{{provider=\"{}\",key=\"{}\"}} {up}",
                escape(&p.name),
                escape(key)
            );
        }
    }
    out.push_str("# HELP tollgate_mcp_server_up 1 while a session with the MCP server is open.\n");
    out.push_str("# TYPE tollgate_mcp_server_up gauge\n");
    let servers = gw.mcp.statuses();
    for s in &servers {
        let up = u8::from(s.status == "up");
        let _ = writeln!(
            out,
            "tollgate_mcp_server_up{{server=\"{}\"}} {up}",
            escape(&s.name)
        );
    }
    out.push_str("# HELP tollgate_mcp_server_restarts_total Sessions opened with the MCP server after the first.\n");
    out.push_str("# TYPE tollgate_mcp_server_restarts_total counter\n");
    for s in &servers {
        let _ = writeln!(
            out,
            "tollgate_mcp_server_restarts_total{{server=\"{}\"}} {}",
            escape(&s.name),
            s.restarts
        );
    }
    out.push_str("# HELP tollgate_mcp_server_tools Tools the MCP server lists.\n");
    out.push_str("# TYPE tollgate_mcp_server_tools gauge\n");
    for s in &servers {
        let _ = writeln!(
            out,
            "tollgate_mcp_server_tools{{server=\"{}\"}} {}",
            escape(&s.name),
            s.tools
        );
    }
    out
}

fn circuit_name(c: Circuit) -> &'static str {
    match c {
        Circuit::Closed => "closed",
        Circuit::Open => "open",
        Circuit::HalfOpen => "half_open",
    }
}

/// The last 10 seconds' attempts: `ok`, `failed`, and `latency_ms`, the successes' mean time to
/// response headers (`null` without any).
fn add_window(entry: &mut serde_json::Value, s: &WindowStats) {
    entry["ok"] = s.ok.into();
    entry["failed"] = s.failed.into();
    entry["latency_ms"] = s.mean_latency_ms.map_or(serde_json::Value::Null, |ms| {
        ((ms * 10.0).round() / 10.0).into()
    });
}

/// `{"providers": [{"provider", "healthy", "circuit": "closed|open|half_open", "ok", "failed",
/// "latency_ms", "keys": [{"key", "healthy", "circuit", "ok", "failed", "latency_ms"}]}]}`;
/// keys by name, never the secret. A key whose circuit is open is benched.
fn health(gw: &Gateway) -> Vec<u8> {
    let providers: Vec<serde_json::Value> = gw
        .health_report(&gw.plan.load())
        .into_iter()
        .map(|p| {
            let keys: Vec<serde_json::Value> = p
                .keys
                .iter()
                .map(|k| {
                    let mut entry = serde_json::json!({
                        "key": &*k.name,
                        "healthy": k.circuit == Circuit::Closed,
                        "circuit": circuit_name(k.circuit),
                    });
                    add_window(&mut entry, &k.stats);
                    entry
                })
                .collect();
            let mut entry = serde_json::json!({
                "provider": &*p.name,
                "healthy": p.circuit == Circuit::Closed,
                "circuit": circuit_name(p.circuit),
                "keys": keys,
            });
            add_window(&mut entry, &p.stats);
            entry
        })
        .collect();
    let mcp_servers = gw.mcp.statuses();
    serde_json::to_vec(&serde_json::json!({ "providers": providers, "mcp_servers": mcp_servers }))
        .unwrap_or_default()
}
