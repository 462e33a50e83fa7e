//! A small blocking HTTP client for tests: every status is returned, never turned into an error.

use std::io::Read;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// When the first body byte arrived, relative to sending (to tell a stream from a buffer).
    pub first_byte_after: Duration,
    pub total: Duration,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    /// The `error.type` of an error reply.
    pub fn error_type(&self) -> String {
        self.json()["error"]["type"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let started = Instant::now();
    collect(req.call(), started)
}

pub fn post_json(url: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> Reply {
    post_raw(url, headers, body.to_string().as_bytes())
}

pub fn post_raw(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut req = agent().post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let started = Instant::now();
    collect(req.send(body), started)
}

fn collect(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    started: Instant,
) -> Reply {
    let resp = result.unwrap_or_else(|e| panic!("HTTP request failed: {e}"));
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let mut reader = resp.into_body().into_reader();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    let mut first_byte_after = None;
    loop {
        let n = reader
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("reading body: {e}"));
        if n == 0 {
            break;
        }
        first_byte_after.get_or_insert_with(|| started.elapsed());
        bytes.extend_from_slice(&buf[..n]);
    }
    let total = started.elapsed();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        first_byte_after: first_byte_after.unwrap_or(total),
        total,
    }
}
