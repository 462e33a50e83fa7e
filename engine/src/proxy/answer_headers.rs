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
    for (suffix, room) in ["requests", "tokens"].iter().zip(headroom) {
        let Some(room) = room else { continue };
        let name = |what: &str| format!("x-ratelimit-{what}-{suffix}");
        for (what, value) in [
            ("limit", room.limit.to_string()),
            ("remaining", room.remaining.to_string()),
            ("reset", format!("{}s", room.reset_secs)),
        ] {
            if let (Ok(n), Ok(v)) = (
                HeaderName::try_from(name(what)),
                HeaderValue::from_str(&value),
            ) {
                h.insert(n, v);
            }
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
