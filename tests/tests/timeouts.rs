//! Per-provider timeouts (`connect_timeout`, `first_byte_timeout`, `timeout`,
//! `stream_idle_timeout`) and how a stream ends when its upstream fails after the first byte:
//! an error event the OpenAI SDK raises, no `[DONE]`, and the usage still charged.

use serde_json::{json, Value};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;
use tollgate_e2e::{post_json, python_with, run_tollgate, Gateway, Mock, Reply};

/// One provider entry. Retries are quick and the circuit never opens, so each test sees
/// exactly the attempts it makes.
fn provider(name: &str, base_url: &str, extra: &str) -> String {
    format!(
        "  - {{name: {name}, kind: openai_compatible, base_url: \"{base_url}\", \
         retries: {{max: 1, backoff: 10ms}}, health: {{min_requests: 1000}}{extra}}}\n"
    )
}

/// A gateway over `providers`, with one key whose tokens are counted (so charges show).
fn gateway(providers: &str) -> Gateway {
    Gateway::start(&format!(
        "providers:\n{providers}virtual_keys: \
         [{{id: vk, key: k, rate_limit: {{tokens: {{limit: 1000000, window: 1h}}}}}}]\n"
    ))
}

fn chat(gw: &Gateway, body: Value) -> Reply {
    post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", "Bearer k")],
        &body,
    )
}

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn ask_stream(model: &str) -> Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]})
}

/// The `error` of each attempt listed in a 502/504.
fn attempt_errors(r: &Reply) -> Vec<String> {
    r.json()["error"]["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("no attempts: {}", r.body))
        .iter()
        .map(|a| a["error"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The `error` object of a stream's last event, which must be an error event.
fn stream_error(r: &Reply) -> Value {
    let last = r
        .body
        .trim_end()
        .rsplit("\n\n")
        .next()
        .and_then(|e| e.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no last event: {}", r.body));
    let v: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"));
    assert!(
        v["error"].is_object(),
        "last event is not an error: {}",
        r.body
    );
    v["error"].clone()
}

fn tokens_used(gw: &Gateway) -> u64 {
    gw.used("virtual_key:vk", "tokens").as_u64().unwrap_or(0)
}

const SEC: Duration = Duration::from_secs(1);

#[test]
fn a_hanging_upstream_ends_in_504_at_the_first_byte_timeout() {
    let mock = Mock::start(&["--hang"]);
    let gw = gateway(&provider(
        "p",
        &mock.base_url(),
        ", timeout: 20s, first_byte_timeout: 400ms",
    ));
    let r = chat(&gw, ask("m"));
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (504, "upstream_timeout"),
        "{}",
        r.body
    );
    assert_eq!(
        attempt_errors(&r),
        ["first byte timeout", "first byte timeout"]
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("within 400 ms (first_byte_timeout)"),
        "{}",
        r.body
    );
    // Two attempts of 400 ms: not sooner, and nowhere near the 20 s total or the client's 30 s.
    assert!(r.total >= Duration::from_millis(800), "{:?}", r.total);
    assert!(r.total < 5 * SEC, "{:?}", r.total);
}

#[test]
fn without_a_first_byte_timeout_the_total_timeout_bounds_the_wait() {
    let mock = Mock::start(&["--hang"]);
    let gw = gateway(&provider("p", &mock.base_url(), ", timeout: 300ms"));
    let r = chat(&gw, ask("m"));
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(attempt_errors(&r), ["timeout", "timeout"]);
    assert!(r.total >= Duration::from_millis(600), "{:?}", r.total);
    assert!(r.total < 5 * SEC, "{:?}", r.total);
}

#[test]
fn a_slow_first_byte_is_retried_then_the_fallback_serves() {
    // `slow` would answer after 5 s: only the first-byte timeout keeps the request from
    // waiting for it (and from being served by it).
    let slow = Mock::start(&["--fault", "slow-first-byte:5s"]);
    let good = Mock::start(&[]);
    let gw = gateway(&format!(
        "{}{}",
        provider(
            "slow",
            &slow.base_url(),
            ", timeout: 20s, first_byte_timeout: 300ms"
        ),
        provider("good", &good.base_url(), "")
    ));
    let mut body = ask("slow/m");
    body["fallbacks"] = json!(["good/m"]);
    let r = chat(&gw, body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-tollgate-provider"), Some("good"));
    assert_eq!(r.header("x-tollgate-attempts"), Some("3"));
    assert_eq!(
        slow.requests().len(),
        2,
        "the slow provider was tried twice"
    );
    assert!(r.total >= Duration::from_millis(600), "{:?}", r.total);
    assert!(r.total < 4 * SEC, "{:?}", r.total);
}

/// A loopback port where a TCP connect hangs, as at a blackholed address: a listener with a
/// backlog of 0 whose one queue slot is taken and never accepted, so the kernel drops SYNs.
struct Blackhole {
    _listener: socket2::Socket,
    _slot: TcpStream,
    addr: SocketAddr,
}

impl Blackhole {
    fn new() -> Blackhole {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        listener.bind(&any.into()).unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let slot = TcpStream::connect(addr).unwrap();
        let probe = TcpStream::connect_timeout(&addr, Duration::from_millis(200));
        assert!(
            probe.is_err(),
            "a full accept queue should make connects hang"
        );
        Blackhole {
            _listener: listener,
            _slot: slot,
            addr,
        }
    }
}

#[test]
fn a_connect_that_gets_no_answer_times_out_and_falls_back() {
    let hole = Blackhole::new();
    let good = Mock::start(&[]);
    let gw = gateway(&format!(
        "{}{}",
        provider(
            "hole",
            &format!("http://{}/v1", hole.addr),
            ", timeout: 20s, connect_timeout: 300ms"
        ),
        provider("good", &good.base_url(), "")
    ));
    let r = chat(&gw, ask("hole/m"));
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (504, "upstream_timeout"),
        "{}",
        r.body
    );
    assert_eq!(attempt_errors(&r), ["connect timeout", "connect timeout"]);
    assert!(
        r.body.contains("within 300 ms (connect_timeout)"),
        "{}",
        r.body
    );
    assert!(r.total >= Duration::from_millis(600), "{:?}", r.total);
    assert!(r.total < 5 * SEC, "{:?}", r.total);

    let mut body = ask("hole/m");
    body["fallbacks"] = json!(["good/m"]);
    let r = chat(&gw, body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-tollgate-provider"), Some("good"));
    assert_eq!(r.header("x-tollgate-attempts"), Some("3"));
}

#[test]
fn a_refused_connection_fails_fast_and_falls_back() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let good = Mock::start(&[]);
    let gw = gateway(&format!(
        "{}{}",
        provider(
            "gone",
            &format!("http://{addr}/v1"),
            ", timeout: 20s, connect_timeout: 10s"
        ),
        provider("good", &good.base_url(), "")
    ));
    let r = chat(&gw, ask("gone/m"));
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (502, "upstream_error"),
        "{}",
        r.body
    );
    let errors = attempt_errors(&r);
    assert_eq!(errors.len(), 2);
    assert!(
        errors.iter().all(|e| e.contains("onnection refused")),
        "{errors:?}"
    );

    let mut body = ask("gone/m");
    body["fallbacks"] = json!(["good/m"]);
    let r = chat(&gw, body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-tollgate-provider"), Some("good"));
    // No timeout was waited for: a refusal is immediate.
    assert!(r.total < 2 * SEC, "{:?}", r.total);
}

#[test]
fn a_stream_that_stalls_ends_with_an_error_event_at_the_idle_timeout() {
    let mock = Mock::start(&["--fault", "stall-mid-stream", "--stream-chunks", "6"]);
    let gw = gateway(&provider(
        "p",
        &mock.base_url(),
        ", timeout: 20s, stream_idle_timeout: 500ms",
    ));
    let r = chat(&gw, ask_stream("m"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("\"content\":\"mock\""),
        "the first half came through: {}",
        r.body
    );
    let e = stream_error(&r);
    assert_eq!(e["type"], "upstream_timeout", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("500 ms (stream_idle_timeout)"),
        "{e}"
    );
    assert!(!r.body.contains("[DONE]"), "{}", r.body);
    assert!(r.total >= Duration::from_millis(500), "{:?}", r.total);
    assert!(r.total < 5 * SEC, "{:?}", r.total);
    assert!(tokens_used(&gw) > 0);
}

#[test]
fn a_slow_but_steady_stream_is_not_idle() {
    // Ten chunks 150 ms apart: a second and a half in all, but never 400 ms of silence.
    let mock = Mock::start(&["--stream-chunks", "10", "--chunk-delay", "150ms"]);
    let gw = gateway(&provider(
        "p",
        &mock.base_url(),
        ", timeout: 20s, stream_idle_timeout: 400ms",
    ));
    let r = chat(&gw, ask_stream("m"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.trim_end().ends_with("data: [DONE]"), "{}", r.body);
    assert!(!r.body.contains("\"error\""), "{}", r.body);
}

#[test]
fn the_openai_sdk_raises_an_api_error_for_a_stalled_stream() {
    let python = python_with(&["openai"]);
    let mock = Mock::start(&["--fault", "stall-mid-stream", "--stream-chunks", "6"]);
    let gw = gateway(&provider(
        "p",
        &mock.base_url(),
        ", timeout: 20s, stream_idle_timeout: 300ms",
    ));
    let script = format!(
        r#"
import openai
client = openai.OpenAI(base_url="{url}/v1", api_key="k", max_retries=0, timeout=20)
text = ""
try:
    stream = client.chat.completions.create(
        model="m", messages=[{{"role": "user", "content": "hi"}}], stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    raise SystemExit("the stream ended as if whole: " + repr(text))
except openai.APIError as e:
    # The stream's own error, not a timeout or connection error of the client.
    assert type(e) is openai.APIError, type(e)
    assert e.body["type"] == "upstream_timeout", e.body
    assert "stream_idle_timeout" in e.message, e.message
    assert text.startswith("mock reply"), text
print("raised")
"#,
        url = gw.url
    );
    let out = Command::new(python).arg("-c").arg(script).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "raised");
}

#[test]
fn a_stream_cut_off_ends_with_an_error_event_and_is_charged_what_was_sent() {
    let mock = Mock::start(&["--fault", "disconnect-mid-stream", "--stream-chunks", "6"]);
    let gw = gateway(&provider("p", &mock.base_url(), ""));
    let r = chat(&gw, ask_stream("m"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"content\":\"mock\""), "{}", r.body);
    let e = stream_error(&r);
    assert_eq!(e["type"], "upstream_error", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("broke off the stream"),
        "{e}"
    );
    assert!(!r.body.contains("[DONE]"), "{}", r.body);
    // Charged the prompt plus the text relayed, not zero, and not the reservation (which
    // holds 1024 output tokens by default).
    let used = tokens_used(&gw);
    assert!(used > 0 && used < 1024, "{used}");
}

#[test]
fn a_malformed_stream_event_ends_the_stream_with_an_error_event() {
    let mock = Mock::start(&["--fault", "malformed-json", "--stream-chunks", "6"]);
    let gw = gateway(&provider("p", &mock.base_url(), ""));
    let r = chat(&gw, ask_stream("m"));
    assert_eq!(r.status, 200, "{}", r.body);
    let e = stream_error(&r);
    assert_eq!(e["type"], "upstream_error", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("not valid JSON"),
        "{e}"
    );
    assert!(!r.body.contains("[DONE]"), "{}", r.body);
    assert!(tokens_used(&gw) > 0);
}

#[test]
fn bad_timeouts_fail_check_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timeouts.yaml");
    std::fs::write(
        &path,
        "providers:
  - name: p
    kind: openai_compatible
    base_url: http://127.0.0.1:9/v1
    timeout: 10s
    first_byte_timeout: 20s
    stream_idle_timeout: 0s
virtual_keys: [{id: vk, key: k}]
",
    )
    .unwrap();
    let out = run_tollgate(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = |line: usize, col: usize| format!("{}:{line}:{col}: ", path.display());
    assert!(
        stderr.contains(&format!(
            "{}first_byte_timeout (20s) is longer than timeout (10s)",
            at(6, 25)
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}stream_idle_timeout must be above 0", at(7, 26))),
        "{stderr}"
    );
}
