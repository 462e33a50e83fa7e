//! Failure injection: faults chosen per request (`x-mock-fault` header) or for every request
//! (flags), and provider keys that are rejected as invalid (`--fail-keys`).

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderMap;

use crate::duration::parse_duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Explicitly no fault; lets one request opt out of a global fault.
    None,
    /// Accept the request and never answer.
    Hang,
    /// Delay the response headers by this much instead of `--latency` (`None`: use
    /// `--first-byte-delay`).
    SlowFirstByte(Option<Duration>),
    /// Send half of the body (half the stream events), then drop the connection.
    DisconnectMidStream,
    /// Send half of the body (half the stream events), then nothing, keeping the connection
    /// open: an upstream that stalls.
    StallMidStream,
    /// Answer 200 with JSON cut in half (for streams: one event's JSON).
    MalformedJson,
    /// Answer this status with a provider-shaped error body.
    Status(u16),
}

pub const FAULT_HELP: &str = concat!(
    "none | hang | slow-first-byte[:DURATION] | disconnect-mid-stream | stall-mid-stream | ",
    "malformed-json | status:NNN"
);

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (s, None),
        };
        let fault = match (name.to_ascii_lowercase().as_str(), arg) {
            ("none", None) => Fault::None,
            ("hang", None) => Fault::Hang,
            ("slow-first-byte", None) => Fault::SlowFirstByte(None),
            ("slow-first-byte", Some(d)) => Fault::SlowFirstByte(Some(parse_duration(d)?)),
            ("disconnect-mid-stream", None) => Fault::DisconnectMidStream,
            ("stall-mid-stream", None) => Fault::StallMidStream,
            ("malformed-json", None) => Fault::MalformedJson,
            ("status", Some(code)) => Fault::Status(parse_status(code)?),
            _ => return Err(format!("unknown fault `{s}` (expected {FAULT_HELP})")),
        };
        Ok(fault)
    }
}

/// An HTTP status a mock may answer with (100–999 is what hyper accepts; below 200 makes no sense
/// as a final answer).
pub fn parse_status(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(code) if (200..=999).contains(&code) => Ok(code),
        _ => Err(format!("invalid status `{s}` (expected 200-999)")),
    }
}

/// The fault of one request: its header wins over the global setting.
pub fn for_request(headers: &HeaderMap, global: Fault) -> Result<Fault, String> {
    match headers.get("x-mock-fault") {
        None => Ok(global),
        Some(v) => v
            .to_str()
            .map_err(|_| "x-mock-fault is not valid text".to_owned())
            .and_then(Fault::from_str),
    }
}

/// Whether the request presents one of the keys configured as bad, in any of the places the
/// providers read keys from (Bearer, x-api-key, x-goog-api-key, `?key=`).
pub fn uses_failing_key(keys: &HashSet<String>, headers: &HeaderMap, query: Option<&str>) -> bool {
    if keys.is_empty() {
        return false;
    }
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    // A SigV4 signature names its access key id: `AWS4-HMAC-SHA256 Credential=AKID/date/...`.
    let signing = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("AWS4-HMAC-SHA256 Credential="))
        .and_then(|v| v.split('/').next());
    let plain = ["x-api-key", "x-goog-api-key"]
        .into_iter()
        .filter_map(|h| headers.get(h).and_then(|v| v.to_str().ok()));
    let from_query = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.strip_prefix("key="));
    bearer
        .into_iter()
        .chain(signing)
        .chain(plain)
        .chain(from_query)
        .any(|k| keys.contains(k.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fault() {
        assert_eq!("hang".parse(), Ok(Fault::Hang));
        assert_eq!("none".parse(), Ok(Fault::None));
        assert_eq!("slow-first-byte".parse(), Ok(Fault::SlowFirstByte(None)));
        assert_eq!(
            "slow-first-byte:2s".parse(),
            Ok(Fault::SlowFirstByte(Some(Duration::from_secs(2))))
        );
        assert_eq!(
            "disconnect-mid-stream".parse(),
            Ok(Fault::DisconnectMidStream)
        );
        assert_eq!("stall-mid-stream".parse(), Ok(Fault::StallMidStream));
        assert_eq!("Malformed-JSON".parse(), Ok(Fault::MalformedJson));
        assert_eq!("status:503".parse(), Ok(Fault::Status(503)));
        for bad in [
            "",
            "explode",
            "status",
            "status:abc",
            "status:42",
            "hang:1s",
            "slow-first-byte:x",
        ] {
            assert!(bad.parse::<Fault>().is_err(), "{bad}");
        }
    }

    #[test]
    fn header_overrides_global() {
        let mut h = HeaderMap::new();
        assert_eq!(for_request(&h, Fault::Hang), Ok(Fault::Hang));
        h.insert("x-mock-fault", "none".parse().unwrap());
        assert_eq!(for_request(&h, Fault::Hang), Ok(Fault::None));
        h.insert("x-mock-fault", "bogus".parse().unwrap());
        assert!(for_request(&h, Fault::None).is_err());
    }

    #[test]
    fn failing_keys_are_found_anywhere() {
        let keys: HashSet<String> = ["bad".to_owned()].into();
        let mut h = HeaderMap::new();
        assert!(!uses_failing_key(&keys, &h, None));
        assert!(uses_failing_key(&keys, &h, Some("alt=sse&key=bad")));
        h.insert("authorization", "Bearer good".parse().unwrap());
        assert!(!uses_failing_key(&keys, &h, None));
        h.insert("x-api-key", "bad".parse().unwrap());
        assert!(uses_failing_key(&keys, &h, None));
        h.remove("x-api-key");
        h.insert("authorization", "Bearer bad".parse().unwrap());
        assert!(uses_failing_key(&keys, &h, None));
    }
}
