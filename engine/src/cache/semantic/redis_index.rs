//! Redis 8 vector sets as the semantic index (`index: {kind: redis}`), so every replica
//! pointed at the same Redis finds what any of them stored. One vector set per partition and
//! embedding width, `{collection}:vset:{dims}:{partition}`: a lookup can only ever see its own
//! tenant's, model's and parameters' entries, and a different model (another width) never
//! meets an old one's vectors. Each element is the exact key (hex) of the stored answer, with
//! its expiry as the attribute `exp` (unix ms); `VSIM … FILTER '.exp > now'` skips expired
//! ones. The set itself expires with its longest-lived entry, and every `TRIM_EVERY`th insert
//! removes expired elements near the new one, so a busy partition does not grow without end.

use super::index::Neighbour;
use super::SemanticError;
use crate::cache::store::{connect_lazily, REDIS_DEADLINE};
use crate::cache::Hash128;
use ::redis::aio::ConnectionManager;
use ::redis::Value;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How often (in inserts, per process) an insert also drops expired elements near it.
const TRIM_EVERY: u64 = 32;
/// Expired elements dropped by one trim at most.
const TRIM_COUNT: usize = 64;

#[derive(Clone)]
pub struct RedisIndex {
    conn: ConnectionManager,
    /// Without its password, for messages.
    url: Arc<str>,
    collection: Arc<str>,
    inserts: Arc<AtomicU64>,
}

impl fmt::Debug for RedisIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisIndex")
            .field("url", &self.url)
            .field("collection", &self.collection)
            .finish()
    }
}

impl RedisIndex {
    /// Parses `url`; the connection opens on first use, so a Redis that is down at start
    /// only turns lookups into misses until it is back.
    pub fn new(url: &str, collection: &str) -> Result<RedisIndex, SemanticError> {
        let (conn, url) =
            connect_lazily(url).map_err(|e| SemanticError::Setup(format!("index: {e}")))?;
        Ok(RedisIndex {
            conn,
            url,
            collection: Arc::from(collection),
            inserts: Arc::default(),
        })
    }

    fn set_key(&self, partition: Hash128, dims: usize) -> String {
        format!("{}:vset:{dims}:{partition}", self.collection)
    }

    async fn run<T: ::redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: &::redis::Cmd,
    ) -> Result<T, SemanticError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(REDIS_DEADLINE, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.failed(format!("{what}: {e}"))),
            Err(_) => Err(self.failed(format!("{what}: no reply within {REDIS_DEADLINE:?}"))),
        }
    }

    /// Whether Redis answers a `PING` now (for `/readyz`).
    pub async fn ping(&self) -> Result<(), SemanticError> {
        self.run::<()>("PING", &::redis::cmd("PING")).await
    }

    fn failed(&self, reason: String) -> SemanticError {
        SemanticError::Index(format!("redis at {}: {reason}", self.url))
    }

    /// The most similar live entry of `partition`.
    pub async fn nearest(
        &self,
        partition: Hash128,
        vector: &[f32],
        now_ms: u64,
    ) -> Result<Option<Neighbour>, SemanticError> {
        let mut cmd = ::redis::cmd("VSIM");
        cmd.arg(self.set_key(partition, vector.len()))
            .arg("FP32")
            .arg(fp32_blob(vector))
            .arg("WITHSCORES")
            .arg("COUNT")
            .arg(1)
            .arg("FILTER")
            .arg(format!(".exp > {now_ms}"));
        let reply: Value = self.run("VSIM", &cmd).await?;
        let scored = scored_elements(reply).map_err(|e| self.failed(e))?;
        Ok(scored.into_iter().next().map(|(exact, score)| Neighbour {
            exact,
            similarity: cosine_of_score(score),
        }))
    }

    /// Adds (or refreshes) the entry pointing at `exact`, expiring at `expires_ms`.
    pub async fn insert(
        &self,
        partition: Hash128,
        vector: &[f32],
        exact: Hash128,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<(), SemanticError> {
        let key = self.set_key(partition, vector.len());
        let blob = fp32_blob(vector);
        let ttl_ms = expires_ms.saturating_sub(now_ms).max(1);
        let mut pipe = ::redis::pipe();
        pipe.cmd("VADD")
            .arg(&key)
            .arg("FP32")
            .arg(&blob)
            .arg(exact.to_string())
            .arg("SETATTR")
            .arg(format!("{{\"exp\":{expires_ms}}}"))
            .ignore()
            // The set lives as long as its longest-lived entry: NX gives a new set its first
            // TTL, GT only ever extends it.
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms)
            .arg("NX")
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms)
            .arg("GT")
            .ignore();
        let mut conn = self.conn.clone();
        match tokio::time::timeout(REDIS_DEADLINE, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.failed(format!("VADD: {e}"))),
            Err(_) => return Err(self.failed(format!("VADD: no reply within {REDIS_DEADLINE:?}"))),
        }
        if self.inserts.fetch_add(1, Ordering::Relaxed) % TRIM_EVERY == TRIM_EVERY - 1 {
            self.trim(&key, &blob, now_ms).await?;
        }
        Ok(())
    }

    /// Removes expired elements near `blob`: expiry is only filtered at lookup, so without
    /// this a partition that is written to forever would keep every dead entry.
    async fn trim(&self, key: &str, blob: &[u8], now_ms: u64) -> Result<(), SemanticError> {
        let mut cmd = ::redis::cmd("VSIM");
        cmd.arg(key)
            .arg("FP32")
            .arg(blob)
            .arg("COUNT")
            .arg(TRIM_COUNT)
            .arg("FILTER")
            .arg(format!(".exp <= {now_ms}"));
        let expired: Vec<String> = self.run("VSIM", &cmd).await?;
        if expired.is_empty() {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        for element in &expired {
            pipe.cmd("VREM").arg(key).arg(element).ignore();
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(REDIS_DEADLINE, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.failed(format!("VREM: {e}"))),
            Err(_) => Err(self.failed(format!("VREM: no reply within {REDIS_DEADLINE:?}"))),
        }
    }
}

/// The vector as Redis reads `FP32`: little-endian floats.
fn fp32_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `VSIM … WITHSCORES` scores a neighbour `(1 + cosine) / 2`; the cache's threshold is a
/// cosine.
fn cosine_of_score(score: f64) -> f32 {
    (2.0 * score - 1.0) as f32
}

/// Elements and scores of a `VSIM … WITHSCORES` reply: a flat array (RESP2) or a map (RESP3).
/// Elements that are not exact keys (written by something else) are an error, not a guess.
fn scored_elements(reply: Value) -> Result<Vec<(Hash128, f64)>, String> {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => {
            if items.len() % 2 != 0 {
                return Err("VSIM returned an odd number of items".into());
            }
            let mut items = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(element), Some(score)) = (items.next(), items.next()) {
                pairs.push((element, score));
            }
            pairs
        }
        Value::Map(pairs) => pairs,
        other => return Err(format!("unexpected VSIM reply {other:?}")),
    };
    pairs
        .into_iter()
        .map(|(element, score)| {
            let element: String =
                ::redis::from_redis_value(element).map_err(|e| format!("VSIM element: {e}"))?;
            let exact = Hash128::from_hex(&element)
                .ok_or_else(|| format!("VSIM element `{element}` is not a cache key"))?;
            let score: f64 =
                ::redis::from_redis_value(score).map_err(|e| format!("VSIM score: {e}"))?;
            Ok((exact, score))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn scores_become_cosines() {
        assert!((cosine_of_score(1.0) - 1.0).abs() < 1e-6);
        assert!((cosine_of_score(0.5)).abs() < 1e-6);
        assert!((cosine_of_score(0.0) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn replies_in_either_protocol_parse_and_foreign_elements_are_refused() {
        let key = Hash128([0xab; 16]);
        let flat = Value::Array(vec![bulk(&key.to_string()), bulk("0.975")]);
        assert_eq!(scored_elements(flat).unwrap(), vec![(key, 0.975)]);
        let map = Value::Map(vec![(bulk(&key.to_string()), Value::Double(0.5))]);
        assert_eq!(scored_elements(map).unwrap(), vec![(key, 0.5)]);
        assert_eq!(scored_elements(Value::Array(vec![])).unwrap(), vec![]);
        let foreign = Value::Array(vec![bulk("not-a-key"), bulk("0.9")]);
        assert!(scored_elements(foreign).unwrap_err().contains("not-a-key"));
        let odd = Value::Array(vec![bulk(&key.to_string())]);
        assert!(scored_elements(odd).is_err());
    }

    #[test]
    fn vectors_are_sent_as_little_endian_floats() {
        assert_eq!(
            fp32_blob(&[1.0, -2.5]),
            [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat()
        );
    }
}
