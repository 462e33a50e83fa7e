//! A cached answer and its compact wire form for shared stores.
//!
//! Wire form: `TGC1`, a 4-byte big-endian header length, a small JSON header (everything but
//! the body), then the body bytes untouched. Bodies are often large and already JSON or SSE
//! text; keeping them raw avoids escaping them into a JSON string and back.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 4] = b"TGC1";

/// Tokens of the call that produced the answer, logged with each hit (the hit itself costs
/// no provider tokens).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// One answer, already in the client's format: a hit replays `body` as-is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub status: u16,
    pub content_type: Option<String>,
    /// The JSON body, or for `stream`, the recorded SSE bytes sent to the client.
    pub body: Bytes,
    pub stream: bool,
    pub usage: CachedUsage,
    /// Unix milliseconds when the answer was stored.
    pub created_at_ms: u64,
    pub ttl: Duration,
    /// Who served it (`provider` name and the upstream model).
    pub provider: String,
    pub model: String,
}

#[derive(Serialize, Deserialize)]
struct Header<'a> {
    #[serde(rename = "s")]
    status: u16,
    #[serde(rename = "ct", default, skip_serializing_if = "Option::is_none")]
    content_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "st", default)]
    stream: bool,
    #[serde(rename = "pt", default)]
    prompt_tokens: u64,
    #[serde(rename = "ctk", default)]
    completion_tokens: u64,
    #[serde(rename = "at")]
    created_at_ms: u64,
    #[serde(rename = "ttl")]
    ttl_ms: u64,
    #[serde(rename = "p", borrow)]
    provider: std::borrow::Cow<'a, str>,
    #[serde(rename = "m", borrow)]
    model: std::borrow::Cow<'a, str>,
}

/// Stored bytes that are not an entry (another writer, another version, truncation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt cache entry: {0}")]
pub struct CorruptEntry(pub String);

/// Unix milliseconds now; 0 if the clock is before 1970.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Entry {
    /// Time left at `now_ms`; `None` once expired. Stores expire entries themselves; this
    /// guards against a store whose clock or TTL handling lags.
    pub fn remaining(&self, now_ms: u64) -> Option<Duration> {
        let age = Duration::from_millis(now_ms.saturating_sub(self.created_at_ms));
        self.ttl.checked_sub(age).filter(|d| !d.is_zero())
    }

    /// Seconds since it was stored, for an `Age` response header.
    pub fn age_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.created_at_ms) / 1000
    }

    pub fn encode(&self) -> Bytes {
        let header = Header {
            status: self.status,
            content_type: self.content_type.as_deref().map(Into::into),
            stream: self.stream,
            prompt_tokens: self.usage.prompt_tokens,
            completion_tokens: self.usage.completion_tokens,
            created_at_ms: self.created_at_ms,
            ttl_ms: u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX),
            provider: self.provider.as_str().into(),
            model: self.model.as_str().into(),
        };
        // Serialising a struct of strings and integers cannot fail.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = BytesMut::with_capacity(8 + header.len() + self.body.len());
        out.put_slice(MAGIC);
        out.put_u32(header.len() as u32);
        out.put_slice(&header);
        out.put_slice(&self.body);
        out.freeze()
    }

    /// The body is sliced out of `bytes` without copying.
    pub fn decode(bytes: Bytes) -> Result<Entry, CorruptEntry> {
        if bytes.len() < 8 || &bytes[..4] != MAGIC {
            return Err(CorruptEntry("not a tollgate cache entry".into()));
        }
        let len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        let end = 8usize
            .checked_add(len)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| CorruptEntry("header runs past the end".into()))?;
        let h: Header<'_> = serde_json::from_slice(&bytes[8..end])
            .map_err(|e| CorruptEntry(format!("bad header: {e}")))?;
        Ok(Entry {
            status: h.status,
            content_type: h.content_type.map(|c| c.into_owned()),
            stream: h.stream,
            usage: CachedUsage {
                prompt_tokens: h.prompt_tokens,
                completion_tokens: h.completion_tokens,
            },
            created_at_ms: h.created_at_ms,
            ttl: Duration::from_millis(h.ttl_ms),
            provider: h.provider.into_owned(),
            model: h.model.into_owned(),
            body: bytes.slice(end..),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(body: &'static str, stream: bool) -> Entry {
        Entry {
            status: 200,
            content_type: Some(
                if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                }
                .into(),
            ),
            body: Bytes::from_static(body.as_bytes()),
            stream,
            usage: CachedUsage {
                prompt_tokens: 12,
                completion_tokens: 34,
            },
            created_at_ms: 1_800_000_000_000,
            ttl: Duration::from_secs(600),
            provider: "openai".into(),
            model: "gpt-4o-2024-08-06".into(),
        }
    }

    #[test]
    fn round_trips_through_the_wire_form() {
        for e in [
            sample(r#"{"choices":[{"message":{"content":"Paris"}}]}"#, false),
            sample("data: {\"x\":\"\\u00e9\"}\n\ndata: [DONE]\n\n", true),
            sample("", false),
        ] {
            let bytes = e.encode();
            assert_eq!(&bytes[..4], b"TGC1");
            assert_eq!(Entry::decode(bytes).unwrap(), e);
        }
        let mut e = sample("{}", false);
        e.content_type = None;
        assert_eq!(Entry::decode(e.encode()).unwrap(), e);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = sample("{}", false).encode();
        for bad in [
            Bytes::new(),
            Bytes::from_static(b"TGC1"),
            Bytes::from_static(b"XXXX\0\0\0\x02{}"),
            Bytes::from_static(b"TGC1\xff\xff\xff\xff{}"),
            Bytes::from_static(b"TGC1\0\0\0\x02[]"),
            good.slice(..good.len() - 3).slice(..12),
        ] {
            assert!(Entry::decode(bad).is_err());
        }
    }

    #[test]
    fn expiry_is_relative_to_creation() {
        let e = sample("{}", false);
        let t0 = e.created_at_ms;
        assert_eq!(e.remaining(t0), Some(Duration::from_secs(600)));
        assert_eq!(e.remaining(t0 + 599_000), Some(Duration::from_secs(1)));
        assert_eq!(e.remaining(t0 + 600_000), None);
        assert_eq!(e.age_secs(t0 + 61_500), 61);
    }
}
