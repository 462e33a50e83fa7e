//! One provider's attempts at a request: send, and on a connection error, timeout, 5xx, 408 or
//! 429 wait (backoff with jitter, or the provider's `retry-after`) and try again, up to
//! `retries.max` times. A 429, 401 or 403 moves to the provider's next key first: the key, not
//! the provider, is what is limited or refused, so it is also benched (see
//! `reliability::keys`), as is a key whose own failure rate opens its circuit.

use super::upstream::{self, SendError};
use super::Gateway;
use crate::plan::{ProviderKeyPlan, ProviderPlan};
use crate::reliability::backoff::parse_retry_after;
use crate::reliability::health::{Health, HealthPolicy};
use crate::reliability::keys::KeyRing;
use crate::reliability::trackers::ProviderHealth;
use crate::state::unix_now;

fn now_secs() -> u64 {
    u64::try_from(unix_now()).unwrap_or(0)
}
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::time::{Duration, Instant};

/// Every failed attempt, as the 502 body lists them (never the key itself, only its name),
/// and when each started and how long it took (for trace spans).
#[derive(Default)]
pub struct Attempts(pub Vec<serde_json::Value>, pub Vec<(Instant, Duration)>);

impl Attempts {
    fn push(
        &mut self,
        p: &ProviderPlan,
        model: &str,
        key: Option<&ProviderKeyPlan>,
        status: Option<u16>,
        error: &str,
        took: Duration,
    ) {
        self.0.push(serde_json::json!({
            "provider": &*p.name,
            "model": model,
            "key": key.map_or("", |k| &*k.name),
            "status": status,
            "error": error,
            "duration_ms": took.as_millis() as u64,
        }));
        let now = Instant::now();
        self.1.push((now.checked_sub(took).unwrap_or(now), took));
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }
}

/// Every attempt failed; `timed_out` when the last one did so by timing out.
pub struct Exhausted {
    pub timed_out: bool,
    pub last_error: String,
}

/// Makes the upstream request for one provider key (`None`: a provider without keys).
pub type BuildRequest<'a> =
    dyn Fn(Option<&ProviderKeyPlan>) -> Option<Request<Full<Bytes>>> + Sync + 'a;

/// Statuses worth another try: the provider (or this key) could not serve right now.
pub fn is_retryable(status: StatusCode) -> bool {
    status.is_server_error() || matches!(status.as_u16(), 408 | 429 | 401 | 403)
}

fn rotates_key(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 401 | 403)
}

/// Counts one outcome for the provider and for the key that got it.
fn record(policy: &HealthPolicy, trackers: [Option<&Health>; 2], ok: bool) {
    let now = now_secs();
    for h in trackers.into_iter().flatten() {
        h.record(policy, now, ok);
    }
}

/// Tries `provider` with the keys that serve `model`, starting at `first_key` unless it is
/// benched. `trackers`: the provider's and its keys' health, from the request's plan. `build`
/// makes the request for a given key. On success: the response, when its attempt started,
/// and the name of the key that got it.
pub async fn send_with_retries(
    gw: &Gateway,
    provider: &ProviderPlan,
    trackers: Option<&ProviderHealth>,
    model: &str,
    first_key: Option<&ProviderKeyPlan>,
    build: &BuildRequest<'_>,
    attempts: &mut Attempts,
) -> Result<(http::Response<Incoming>, Instant, Option<String>), Exhausted> {
    let health = trackers.map(|t| &*t.provider);
    let mut ring = KeyRing::new(provider, trackers, model, first_key, now_secs());
    let mut last = Exhausted {
        timed_out: false,
        last_error: String::new(),
    };
    for attempt in 0..=provider.retries.max {
        let key = ring.current();
        let key_health = ring.tracker();
        let Some(req) = build(key) else { break };
        let started = Instant::now();
        let mut retry_after = None;
        let mut rotate = false;
        let client = gw.upstreams.client(provider);
        match upstream::send(client, req, &provider.timeouts).await {
            Ok(resp) if !is_retryable(resp.status()) => {
                record(&provider.health, [health, key_health], true);
                let (now, latency) = (now_secs(), started.elapsed());
                for h in [health, key_health].into_iter().flatten() {
                    h.record_latency(now, latency);
                }
                return Ok((resp, started, key.map(|k| k.name.to_string())));
            }
            Ok(resp) => {
                let status = resp.status();
                // A refused or rate-limited key says nothing about the provider's health, and
                // all there is to know about the key's: bench it.
                rotate = rotates_key(status);
                if rotate {
                    if let Some(k) = key_health {
                        k.trip(now_secs());
                    }
                } else {
                    record(&provider.health, [health, key_health], false);
                }
                retry_after = resp
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                // The error body is part of the attempt: within what is left of `timeout`.
                let deadline = started + provider.timeouts.total;
                let body =
                    tokio::time::timeout_at(deadline.into(), resp.into_body().collect()).await;
                let msg = body
                    .ok()
                    .and_then(Result::ok)
                    .map(|b| super::forward::upstream_error_message(&b.to_bytes()))
                    .unwrap_or_default();
                attempts.push(
                    provider,
                    model,
                    key,
                    Some(status.as_u16()),
                    &msg,
                    started.elapsed(),
                );
                last = Exhausted {
                    timed_out: false,
                    last_error: format!(
                        "provider `{}` answered {}: {msg}",
                        provider.name,
                        status.as_u16()
                    ),
                };
            }
            Err(SendError::TimedOut(phase)) => {
                record(&provider.health, [health, key_health], false);
                attempts.push(
                    provider,
                    model,
                    key,
                    None,
                    phase.as_str(),
                    started.elapsed(),
                );
                last = Exhausted {
                    timed_out: true,
                    last_error: phase.message(&provider.name, &provider.timeouts),
                };
            }
            Err(SendError::Failed(msg)) => {
                record(&provider.health, [health, key_health], false);
                attempts.push(provider, model, key, None, &msg, started.elapsed());
                last = Exhausted {
                    timed_out: false,
                    last_error: format!("provider `{}` failed: {msg}", provider.name),
                };
            }
        }
        ring.advance(now_secs(), rotate);
        if attempt < provider.retries.max {
            gw.metrics.record_retry(&provider.name);
            tokio::time::sleep(
                provider
                    .retries
                    .delay(attempt + 1, fastrand::f64(), retry_after),
            )
            .await;
        }
    }
    Err(last)
}
