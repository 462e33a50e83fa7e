//! The last N requests, kept for tests to inspect (`GET /_mock/requests`), and a request count.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use serde::Serialize;

struct Recorded {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

pub struct Recorder {
    capacity: usize,
    // Cloning method/uri/headers/body is cheap (shared buffers); JSON is only built when a test
    // asks, so recording costs little on the benchmark path.
    ring: Mutex<VecDeque<Recorded>>,
    total: AtomicU64,
}

#[derive(Serialize)]
struct RecordedJson<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: serde_json::Map<String, serde_json::Value>,
    body: String,
}

impl Recorder {
    pub fn new(capacity: usize) -> Self {
        Recorder {
            capacity,
            ring: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            total: AtomicU64::new(0),
        }
    }

    pub fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if self.capacity == 0 {
            return;
        }
        let entry = Recorded {
            method: method.clone(),
            uri: uri.clone(),
            headers: headers.clone(),
            body: body.clone(),
        };
        // A poisoned lock only means another request panicked mid-push; the ring is still usable.
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    pub fn clear(&self) {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn reset_total(&self) {
        self.total.store(0, Ordering::Relaxed);
    }

    /// JSON array, oldest first: `{"method","path","query","headers":{name: value},"body"}`.
    /// Repeated headers are joined with `, ` as HTTP allows.
    pub fn to_json(&self) -> Vec<u8> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let entries: Vec<RecordedJson> = ring
            .iter()
            .map(|r| {
                let mut headers = serde_json::Map::new();
                for name in r.headers.keys() {
                    let value = r
                        .headers
                        .get_all(name)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ");
                    headers.insert(name.as_str().to_owned(), value.into());
                }
                RecordedJson {
                    method: r.method.as_str(),
                    path: r.uri.path(),
                    query: r.uri.query().unwrap_or(""),
                    headers,
                    body: String::from_utf8_lossy(&r.body).into_owned(),
                }
            })
            .collect();
        serde_json::to_vec(&entries).unwrap_or_else(|_| b"[]".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn push(r: &Recorder, path: &str) {
        let mut h = HeaderMap::new();
        h.append("X-Custom", "a".parse().unwrap());
        h.append("x-custom", "b".parse().unwrap());
        let uri: Uri = path.parse().unwrap();
        r.record(&Method::POST, &uri, &h, &Bytes::from_static(b"{\"x\":1}"));
    }

    #[test]
    fn keeps_the_last_n_oldest_first() {
        let r = Recorder::new(2);
        push(&r, "/a?x=1");
        push(&r, "/b");
        push(&r, "/c");
        let v: Value = serde_json::from_slice(&r.to_json()).unwrap();
        let paths: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["/b", "/c"]);
        assert_eq!(v[0]["headers"]["x-custom"], "a, b");
        assert_eq!(v[0]["body"], "{\"x\":1}");
        assert_eq!(v[0]["method"], "POST");
        assert_eq!(r.total(), 3);
        r.clear();
        assert_eq!(r.to_json(), b"[]");
        assert_eq!(r.total(), 3);
    }

    #[test]
    fn zero_capacity_only_counts() {
        let r = Recorder::new(0);
        push(&r, "/a?q=1");
        assert_eq!(r.to_json(), b"[]");
        assert_eq!(r.total(), 1);
    }
}
