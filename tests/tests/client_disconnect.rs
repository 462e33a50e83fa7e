//! A client that hangs up cancels the gateway's upstream call: the mock provider sees its
//! connection close long before it would have finished, and the request is still charged.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tollgate_e2e::{get, Gateway, Mock};

fn gateway(mock: &Mock) -> Gateway {
    Gateway::start(&format!(
        "providers:
  - {{name: p, kind: openai_compatible, base_url: {}, timeout: 30s, keys: [{{name: main, key: sk-1}}]}}
virtual_keys:
  - {{id: vk, key: k, rate_limit: {{requests: {{limit: 100, window: 1d}}, tokens: {{limit: 100000, window: 1d}}}}}}
",
        mock.base_url()
    ))
}

/// Sends a chat request on a raw connection and returns the connection, for the test to drop.
fn send(gw: &Gateway, body: &serde_json::Value) -> TcpStream {
    let addr = gw.url.trim_start_matches("http://");
    let body = body.to_string();
    let mut conn = TcpStream::connect(addr).expect("connect to the gateway");
    write!(
        conn,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer k\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send the request");
    conn
}

/// `(completed, cancelled)` as the mock counts them.
fn outcomes(mock: &Mock) -> (u64, u64) {
    let stats = get(&format!("{}/_mock/stats", mock.url), &[]).json();
    let n = |f: &str| {
        stats[f]
            .as_u64()
            .unwrap_or_else(|| panic!("{f} in {stats}"))
    };
    (n("completed"), n("cancelled"))
}

/// Waits (up to 3 s) for the mock to count one cancelled request; returns how long it took.
fn wait_for_cancel(mock: &Mock, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if outcomes(mock) == (0, 1) {
            return since.elapsed();
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!(
        "the mock saw no cancelled call (completed, cancelled) = {:?}",
        outcomes(mock)
    );
}

/// The key's counter of `kind`: `(used, reserved)`, once nothing is reserved any more.
fn settled(gw: &Gateway, kind: &str) -> (u64, u64) {
    let read = || {
        let c = gw
            .usage()
            .into_iter()
            .find(|c| c["scope"] == "virtual_key:vk" && c["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} counter"));
        (
            c["used"].as_u64().unwrap_or(0),
            c["reserved"].as_u64().unwrap_or(0),
        )
    };
    for _ in 0..60 {
        let now = read();
        if now.1 == 0 {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    read()
}

#[test]
fn hanging_up_while_waiting_for_the_answer_cancels_the_upstream_call() {
    // The answer would take 5 s; the client gives up after 300 ms.
    let mock = Mock::start(&["--latency", "5s"]);
    let gw = gateway(&mock);
    let started = Instant::now();
    let conn = send(
        &gw,
        &serde_json::json!({"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}),
    );
    std::thread::sleep(Duration::from_millis(300));
    drop(conn);
    let took = wait_for_cancel(&mock, started);
    assert!(took < Duration::from_secs(4), "cancelled after {took:?}");
    assert_eq!(mock.requests().len(), 1, "no retry after the client left");
    // Settled (nothing left reserved) and charged: one request and its estimate.
    assert_eq!(settled(&gw, "requests"), (1, 0));
    let (tokens, reserved) = settled(&gw, "tokens");
    assert!(
        tokens >= 20 && reserved == 0,
        "tokens {tokens}, reserved {reserved}"
    );
}

#[test]
fn hanging_up_mid_stream_cancels_the_upstream_stream() {
    // 200 chunks 50 ms apart: 10 s to the end.
    let mock = Mock::start(&["--stream-chunks", "200", "--chunk-delay", "50ms"]);
    let gw = gateway(&mock);
    let started = Instant::now();
    let mut conn = send(
        &gw,
        &serde_json::json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("data: {") {
        let n = conn.read(&mut buf).expect("read the stream");
        assert!(n > 0, "stream ended before its first event: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    drop(conn);
    let took = wait_for_cancel(&mock, started);
    assert!(took < Duration::from_secs(5), "cancelled after {took:?}");
    // Charged what was sent (prompt estimate plus the answer so far), nothing left reserved.
    assert_eq!(settled(&gw, "requests"), (1, 0));
    let (tokens, reserved) = settled(&gw, "tokens");
    assert!(
        tokens > 0 && reserved == 0,
        "tokens {tokens}, reserved {reserved}"
    );
}

#[test]
fn a_client_that_stays_sees_the_call_completed() {
    // The control case: the same mock counts an answered call as completed, not cancelled.
    let mock = Mock::start(&["--stream-chunks", "3", "--chunk-delay", "10ms"]);
    let gw = gateway(&mock);
    let r = tollgate_e2e::post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", "Bearer k")],
        &serde_json::json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(outcomes(&mock), (1, 0));
}
