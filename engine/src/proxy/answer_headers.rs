//! The headers of a proxied answer: what of the provider's passes on, and the gateway's own
//! rate-limit headers in OpenAI's form.

use crate::admission::limits::Headroom;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};

/// Upstream response headers that describe the connection or the provider account, not the answer.
fn is_dropped_response_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authenticate"
            | "content-length"
            | "set-cookie"
    ) || name.as_str().starts_with("x-ratelimit-")
        || name.as_str().starts_with("anthropic-ratelimit-")
}

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the tightest tier of each
/// kind, in the form OpenAI uses, so SDK retry logic works.
pub(super) fn insert_ratelimit_headers(h: &mut HeaderMap, headroom: [Option<Headroom>; 2]) {
    // Static names and integers written without `format!`: these six headers go on every
    // answer of a limited key, and building each name from a string cost an allocation and a
    // parse per header.
    let names = [
        [
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ],
        [
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ],
    ];
    for (names, room) in names.iter().zip(headroom) {
        let Some(room) = room else { continue };
        let [limit, remaining, reset] = names.map(HeaderName::from_static);
        h.insert(limit, HeaderValue::from(room.limit));
        h.insert(remaining, HeaderValue::from(room.remaining));
        let mut seconds = itoa::Buffer::new();
        let mut value = [0u8; 24];
        let digits = seconds.format(room.reset_secs).as_bytes();
        value[..digits.len()].copy_from_slice(digits);
        value[digits.len()] = b's';
        if let Ok(v) = HeaderValue::from_bytes(&value[..=digits.len()]) {
            h.insert(reset, v);
        }
    }
}

pub(super) fn copy_response_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !is_dropped_response_header(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

pub(super) fn insert_str(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_headers_name_each_kinds_tightest_tier() {
        let mut h = HeaderMap::new();
        let requests = Headroom {
            limit: 600,
            remaining: 599,
            reset_secs: 42,
        };
        let tokens = Headroom {
            limit: u64::MAX,
            remaining: 0,
            reset_secs: 3600,
        };
        insert_ratelimit_headers(&mut h, [Some(requests), Some(tokens)]);
        let got = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(got("x-ratelimit-limit-requests"), "600");
        assert_eq!(got("x-ratelimit-remaining-requests"), "599");
        assert_eq!(got("x-ratelimit-reset-requests"), "42s");
        assert_eq!(got("x-ratelimit-limit-tokens"), "18446744073709551615");
        assert_eq!(got("x-ratelimit-remaining-tokens"), "0");
        assert_eq!(got("x-ratelimit-reset-tokens"), "3600s");
        let mut h = HeaderMap::new();
        insert_ratelimit_headers(&mut h, [None, Some(tokens)]);
        assert_eq!(h.len(), 3, "a kind without a limit gets no headers: {h:?}");
    }
}
