//! The `redis` state backend (`state: {kind: redis, url}`): the same counters as the memory
//! backend, kept in Redis so any number of gateway replicas share them atomically (SPEC §6).
//!
//! Every operation is one round trip. `reserve` and `settle` are Lua scripts
//! (`redis_reserve.lua`, `redis_settle.lua`) sent with EVALSHA (`redis::Script` falls back to
//! EVAL + SCRIPT LOAD when the server does not know the script yet, e.g. after a restart).
//! Redis runs a script atomically, so checking every tier and incrementing every tier is one
//! indivisible step across all replicas: N racing reservations against limit L admit exactly
//! L units, and a refused request changes nothing (no rollback window, unlike the memory
//! backend, where a concurrent request can see a tier briefly fuller than it ends up).
//!
//! Key layout (one hash per counter and window, fields `used` and `reserved`):
//!
//! - `tg:{scope}:{kind}:{window}:{window_id}`, e.g. `tg:virtual_key:vk-ml:tokens:1h:500000`,
//!   with a TTL running to the window's reset plus `TTL_MARGIN_SECS`, so a passed window's key
//!   disappears by itself; a new window is simply a new key, starting empty.
//! - `tg:{scope}:concurrent` (requests in flight, in `reserved`), with a safety TTL of
//!   `CONCURRENT_TTL_SECS` refreshed on every reservation: slots held by a replica that
//!   crashed mid-request come back once the scope has been idle that long.
//!
//! The key is injective even though a scope may contain `:`: reading from the right, the
//! window id is digits and kind/window come from fixed sets without `:`.
//! All keys of a request go to one script, so this needs a single Redis (or a primary with
//! replicas), not Redis Cluster, whose scripts may only touch keys of one slot.
//!
//! TTLs are relative (EXPIRE, computed from the caller's `now`), not absolute: a Redis server
//! whose clock differs from the gateway's then cannot expire a window early. The margin
//! covers clock skew between replicas, so a replica a little behind never recreates a window
//! that has already expired.

use super::counter::{LimitKind, Usage, MAX_AMOUNT};
use super::limits::{unix_now, Denied};
use super::memory::CounterKey;
use super::window::Window;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, Script};
use chrono::DateTime;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long a windowed key outlives its window.
pub const TTL_MARGIN_SECS: i64 = 300;
/// How long a `concurrent` key lives after its last reservation.
pub const CONCURRENT_TTL_SECS: i64 = 900;

/// Each attempt to open a connection gives up after this long.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// A command without a reply after this long fails: a request must not hang on a dead Redis.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Reconnection attempts per failed connection before the error reaches callers. Few and
/// short, so requests made while Redis is down fail fast with `Unavailable` instead of
/// queueing behind a long backoff; the next command starts a new attempt.
const RECONNECT_RETRIES: usize = 2;
/// Upper bound on any one operation, reconnection included.
const OPERATION_DEADLINE: Duration = Duration::from_secs(3);

/// The Redis key of a counter in window `window_id`. `concurrent` counters ignore the window
/// and its id; any other kind without a window is a counter that never resets.
pub fn redis_key(scope: &str, kind: LimitKind, window: Option<Window>, window_id: u64) -> String {
    match window {
        Some(w) if kind != LimitKind::Concurrent => format!("tg:{scope}:{kind}:{w}:{window_id}"),
        _ => format!("tg:{scope}:{kind}"),
    }
}

/// Seconds a key written at `now` for window `window_id` should live; 0 means "no TTL".
fn key_ttl(kind: LimitKind, window: Option<Window>, window_id: u64, now: i64) -> i64 {
    match window {
        _ if kind == LimitKind::Concurrent => CONCURRENT_TTL_SECS,
        Some(w) => {
            let reset = w.start_of_id(window_id.saturating_add(1));
            reset
                .saturating_sub(now)
                .max(1)
                .saturating_add(TTL_MARGIN_SECS)
        }
        None => 0,
    }
}

/// The current window id of a counter; 0 for counters that never reset.
fn window_id_at(kind: LimitKind, window: Option<Window>, now: i64) -> u64 {
    match window {
        Some(w) if kind != LimitKind::Concurrent => w.window_id(now),
        _ => 0,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("invalid redis URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("redis at {url} is unavailable: {reason}")]
    Unavailable { url: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    /// A tier had no room; nothing was reserved.
    #[error("{0}")]
    Denied(Denied),
    /// Redis could not be reached or failed: the request's fate is the caller's policy.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
}

/// One tier of a request for `RedisStore::reserve`: reserve `amount` on the counter of
/// (`scope`, `kind`, `window`) if it stays within `limit`. `window` is `None` only for
/// `Concurrent` (which ignores it anyway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTier {
    pub scope: Arc<str>,
    pub kind: LimitKind,
    pub window: Option<Window>,
    pub amount: u64,
    pub limit: u64,
}

/// What one tier holds between reserve and settle.
#[derive(Debug, Clone)]
struct Held {
    scope: Arc<str>,
    kind: LimitKind,
    window: Option<Window>,
    /// The window the estimate was reserved in.
    window_id: u64,
    amount: u64,
}

impl Held {
    fn key(&self) -> String {
        redis_key(&self.scope, self.kind, self.window, self.window_id)
    }
}

/// Amounts reserved on each tier of one request, to be settled with `RedisStore::settle`.
///
/// Like the memory backend's `Reservation`, dropping it unsettled charges the estimates
/// (usage must not vanish because a code path forgot to settle) and frees `concurrent`
/// slots; here that happens in a spawned task, since Drop cannot wait for Redis.
#[must_use = "settle the reservation, or it is charged at the estimate when dropped"]
pub struct RedisReservation {
    held: Vec<Held>,
    /// For the charge on drop.
    store: RedisStore,
}

impl RedisReservation {
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The amount reserved on tier `i`.
    pub fn amount(&self, i: usize) -> Option<u64> {
        self.held.get(i).map(|h| h.amount)
    }

    /// The window id tier `i` was reserved in (0 for `concurrent`).
    pub fn window_id(&self, i: usize) -> Option<u64> {
        self.held.get(i).map(|h| h.window_id)
    }
}

impl Drop for RedisReservation {
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let store = self.store.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = store.apply(&held, Charge::Estimate, unix_now()).await {
                        tracing::warn!(error = %e, "charging a dropped redis reservation failed");
                    }
                });
            }
            Err(_) => tracing::warn!(
                tiers = held.len(),
                "redis reservation dropped outside a runtime: its reservations stay until their keys expire"
            ),
        }
    }
}

impl fmt::Debug for RedisReservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.held.iter().map(|h| (h.key(), h.amount)))
            .finish()
    }
}

/// What settling charges on each tier.
#[derive(Clone, Copy)]
enum Charge<'a> {
    /// `actual[i]` on tier `i`; the estimate where `actual` has no entry.
    Actual(&'a [u64]),
    Estimate,
    /// Nothing: the reservation is given back.
    Nothing,
}

struct Scripts {
    reserve: Script,
    settle: Script,
}

/// Counters in Redis. Cheap to clone: clones share one multiplexed connection, which
/// reconnects by itself after Redis restarts or the network drops.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    scripts: Arc<Scripts>,
    /// The URL without its password, for error messages.
    url: Arc<str>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .finish()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`, `rediss://`, `unix://`).
    /// Fails with a message naming the URL (password hidden) when it does not parse or no
    /// server answers; never panics.
    pub async fn connect(url: &str) -> Result<RedisStore, StateError> {
        let shown: Arc<str> = Arc::from(redact(url));
        let client = Client::open(url).map_err(|e| StateError::InvalidUrl {
            url: shown.to_string(),
            reason: e.to_string(),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let unavailable = |reason: String| StateError::Unavailable {
            url: shown.to_string(),
            reason,
        };
        let mut conn = tokio::time::timeout(
            OPERATION_DEADLINE,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| unavailable(format!("no connection within {OPERATION_DEADLINE:?}")))?
        .map_err(|e| unavailable(e.to_string()))?;
        let scripts = Scripts {
            reserve: Script::new(include_str!("redis_reserve.lua")),
            settle: Script::new(include_str!("redis_settle.lua")),
        };
        // Loading now surfaces a server that cannot run scripts at startup rather than on the
        // first request, and saves that request the EVALSHA miss.
        for script in [&scripts.reserve, &scripts.settle] {
            let load = script.load_async(&mut conn);
            tokio::time::timeout(OPERATION_DEADLINE, load)
                .await
                .map_err(|_| unavailable("SCRIPT LOAD timed out".to_string()))?
                .map_err(|e| unavailable(format!("SCRIPT LOAD failed: {e}")))?;
        }
        Ok(RedisStore {
            conn,
            scripts: Arc::new(scripts),
            url: shown,
        })
    }

    /// Whether Redis answers a `PING` now (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StateError> {
        let mut conn = self.conn.clone();
        let cmd = ::redis::cmd("PING");
        let ping = cmd.query_async::<()>(&mut conn);
        let unavailable = |reason: String| StateError::Unavailable {
            url: self.url.to_string(),
            reason,
        };
        match tokio::time::timeout(OPERATION_DEADLINE, ping).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(unavailable(format!("PING: {e}"))),
            Err(_) => Err(unavailable(format!(
                "PING: no reply within {OPERATION_DEADLINE:?}"
            ))),
        }
    }

    /// Reserves every tier's amount in the window holding `now` (unix seconds), or none of
    /// them: admitted only if on every tier `used + reserved + amount <= limit`.
    pub async fn reserve(
        &self,
        tiers: &[RedisTier],
        now_unix: i64,
    ) -> Result<RedisReservation, ReserveError> {
        let held: Vec<Held> = tiers
            .iter()
            .map(|t| Held {
                scope: Arc::clone(&t.scope),
                kind: t.kind,
                window: t.window,
                window_id: window_id_at(t.kind, t.window, now_unix),
                // Same ceiling as the memory counters; it also keeps every value exact in
                // Lua's doubles and far from overflowing Redis's 64-bit integers.
                amount: t.amount.min(MAX_AMOUNT),
            })
            .collect();
        if held.is_empty() {
            return Ok(RedisReservation {
                held,
                store: self.clone(),
            });
        }
        let mut call = self.scripts.reserve.prepare_invoke();
        for (h, tier) in held.iter().zip(tiers) {
            call.key(h.key()).arg(h.amount).arg(tier.limit).arg(key_ttl(
                h.kind,
                h.window,
                h.window_id,
                now_unix,
            ));
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = self
            .run(call.invoke_async(&mut conn))
            .await
            .map_err(|e| ReserveError::Unavailable(e.to_string()))?;
        match reply.as_slice() {
            [0] => Ok(RedisReservation {
                held,
                store: self.clone(),
            }),
            &[index, used, reserved] => {
                let i = usize::try_from(index - 1)
                    .ok()
                    .filter(|&i| i < tiers.len())
                    .ok_or_else(|| bad_reply(&self.url, &reply))?;
                let tier = &tiers[i];
                let window = held[i]
                    .window
                    .filter(|_| tier.kind != LimitKind::Concurrent);
                Err(ReserveError::Denied(Denied {
                    tier: i,
                    kind: tier.kind,
                    window,
                    used: u64::try_from(used).unwrap_or(0),
                    reserved: u64::try_from(reserved).unwrap_or(0),
                    requested: tier.amount,
                    limit: tier.limit,
                    resets_at: window
                        .map(|w| w.start_of_id(held[i].window_id.saturating_add(1)))
                        .and_then(|secs| DateTime::from_timestamp(secs, 0)),
                }))
            }
            _ => Err(bad_reply(&self.url, &reply)),
        }
    }

    /// Replaces each tier's estimate by the actual usage, `actual[i]` for tier `i` (a tier
    /// without an entry is charged its estimate; `concurrent` tiers ignore theirs and give
    /// their slot back). See `settle_at`.
    pub async fn settle(&self, r: RedisReservation, actual: &[u64]) -> Result<(), StateError> {
        self.settle_at(r, actual, unix_now()).await
    }

    /// `settle` at `now` (unix seconds): the estimate leaves the window it was reserved in,
    /// and the actual usage counts in the window holding `now`, so after a rollover the old
    /// window's reservation is released and the usage lands in the new window.
    pub async fn settle_at(
        &self,
        mut r: RedisReservation,
        actual: &[u64],
        now: i64,
    ) -> Result<(), StateError> {
        let held = std::mem::take(&mut r.held);
        self.apply(&held, Charge::Actual(actual), now).await
    }

    /// Gives every reservation back without charging anything: the request never reached a
    /// provider. `requests` tiers are given back too; `settle` counts the attempt instead.
    pub async fn release(&self, mut r: RedisReservation) -> Result<(), StateError> {
        let held = std::mem::take(&mut r.held);
        self.apply(&held, Charge::Nothing, unix_now()).await
    }

    /// One settle script call for every tier of a reservation.
    async fn apply(&self, held: &[Held], charge: Charge<'_>, now: i64) -> Result<(), StateError> {
        if held.is_empty() {
            return Ok(());
        }
        let mut call = self.scripts.settle.prepare_invoke();
        for (i, h) in held.iter().enumerate() {
            let used = match (h.kind, charge) {
                (LimitKind::Concurrent, _) | (_, Charge::Nothing) => 0,
                (_, Charge::Estimate) => h.amount,
                (_, Charge::Actual(actual)) => actual.get(i).copied().unwrap_or(h.amount),
            };
            // A replica whose clock is behind the reserving one still charges the newer
            // window: windows only move forward, as in the memory backend.
            let current = window_id_at(h.kind, h.window, now).max(h.window_id);
            call.key(h.key())
                .key(redis_key(&h.scope, h.kind, h.window, current))
                .arg(h.amount)
                .arg(used.min(MAX_AMOUNT))
                .arg(key_ttl(h.kind, h.window, current, now));
        }
        let mut conn = self.conn.clone();
        let _tiers: i64 = self.run(call.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// (used, reserved) of one counter in the window holding `now`; (0, 0) if it has none.
    pub async fn usage(
        &self,
        scope: &str,
        kind: LimitKind,
        window: Option<Window>,
        now: i64,
    ) -> Result<(u64, u64), StateError> {
        let key = CounterKey {
            scope: Arc::from(scope),
            kind,
            window,
        };
        let usage = self.usage_many(std::slice::from_ref(&key), now).await?;
        Ok(usage.first().map_or((0, 0), |u| (u.used, u.reserved)))
    }

    /// Usage of many counters in the windows holding `now`, in the order given: one
    /// pipelined round trip, for the admin listing.
    pub async fn usage_many(
        &self,
        keys: &[CounterKey],
        now: i64,
    ) -> Result<Vec<Usage>, StateError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        let mut ids = Vec::with_capacity(keys.len());
        for k in keys {
            let id = window_id_at(k.kind, k.window, now);
            ids.push(id);
            pipe.cmd("HMGET")
                .arg(redis_key(&k.scope, k.kind, k.window, id))
                .arg("used")
                .arg("reserved");
        }
        let mut conn = self.conn.clone();
        let rows: Vec<(Option<u64>, Option<u64>)> = self.run(pipe.query_async(&mut conn)).await?;
        Ok(ids
            .into_iter()
            .zip(rows)
            .map(|(window_id, (used, reserved))| Usage {
                window_id,
                used: used.unwrap_or(0),
                reserved: reserved.unwrap_or(0),
            })
            .collect())
    }

    /// Runs one Redis call with the operation deadline, mapping failures to `Unavailable`.
    async fn run<T>(
        &self,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StateError> {
        match tokio::time::timeout(OPERATION_DEADLINE, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StateError::Unavailable {
                url: self.url.to_string(),
                reason: e.to_string(),
            }),
            Err(_) => Err(StateError::Unavailable {
                url: self.url.to_string(),
                reason: format!("no reply within {OPERATION_DEADLINE:?}"),
            }),
        }
    }
}

fn bad_reply(url: &str, reply: &[i64]) -> ReserveError {
    ReserveError::Unavailable(format!(
        "redis at {url}: unexpected reserve reply {reply:?}"
    ))
}

/// The URL with any password replaced by `***`: error messages end up in logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme + 3 => match url[scheme + 3..at].split_once(':') {
            Some((user, _password)) => {
                format!("{}://{user}:***@{}", &url[..scheme], &url[at + 1..])
            }
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

#[cfg(test)]
#[path = "redis_tests.rs"]
pub(crate) mod tests;
