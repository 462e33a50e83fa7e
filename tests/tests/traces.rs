//! OpenTelemetry export: one server span per request with GenAI attributes and one client span
//! per upstream attempt, posted as OTLP/JSON to a collector (here a small receiver written for
//! the test), and the W3C `traceparent` carried upstream.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate_e2e::{post_json, Gateway, Mock};

/// Accepts OTLP/HTTP posts and keeps their JSON bodies.
struct Collector {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let kept = kept.clone();
                std::thread::spawn(move || loop {
                    let mut reader = BufReader::new(&mut stream);
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if let Ok(v) = serde_json::from_slice(&body) {
                        kept.lock().unwrap().push(v);
                    }
                    let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if stream.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                });
            }
        });
        Collector { url, bodies }
    }

    /// Every exported span, waiting until there are at least `n`.
    fn spans(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans: Vec<Value> = self
                .bodies
                .lock()
                .unwrap()
                .iter()
                .flat_map(|b| {
                    b["resourceSpans"][0]["scopeSpans"][0]["spans"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .collect();
            if spans.len() >= n || Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn attr(span: &Value, key: &str) -> Value {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| a["value"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn requests_become_spans_joined_to_the_callers_trace() {
    let collector = Collector::start();
    let mock = Mock::start(&["--fail-first", "1", "--fail-status", "500"]);
    let gw = Gateway::start(&format!(
        "traces: {{endpoint: '{}', service_name: gw-test}}
providers:
  - {{name: p, kind: openai_compatible, base_url: {}, keys: [{{key: sk-provider-hidden}}],
     retries: {{max: 2, backoff: 10ms}}}}
virtual_keys:
  - {{id: vk-t, key: vk-secret-traced}}
",
        collector.url,
        mock.base_url()
    ));
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let reply = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[
            ("authorization", "Bearer vk-secret-traced"),
            ("traceparent", &format!("00-{trace_id}-00f067aa0ba902b7-01")),
        ],
        &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    let spans = collector.spans(3);
    assert_eq!(
        spans.len(),
        3,
        "one server span and two attempts: {spans:?}"
    );
    let server = spans.iter().find(|s| s["kind"] == 2).expect("server span");
    assert_eq!(server["traceId"], trace_id);
    assert_eq!(server["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(server["name"], "chat m");
    assert_eq!(attr(server, "gen_ai.operation.name")["stringValue"], "chat");
    assert_eq!(attr(server, "gen_ai.provider.name")["stringValue"], "p");
    assert_eq!(attr(server, "gen_ai.request.model")["stringValue"], "m");
    assert_eq!(attr(server, "tollgate.virtual_key")["stringValue"], "vk-t");
    let input: u64 = attr(server, "gen_ai.usage.input_tokens")["intValue"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        input,
        reply.json()["usage"]["prompt_tokens"].as_u64().unwrap()
    );
    let attempts: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 3).collect();
    for a in &attempts {
        assert_eq!(a["traceId"], trace_id);
        assert_eq!(a["parentSpanId"], server["spanId"]);
        let (start, end): (u64, u64) = (
            a["startTimeUnixNano"].as_str().unwrap().parse().unwrap(),
            a["endTimeUnixNano"].as_str().unwrap().parse().unwrap(),
        );
        assert!(start <= end, "{a}");
    }
    assert_eq!(
        attr(attempts[0], "http.response.status_code")["intValue"],
        "500"
    );
    assert_eq!(
        attempts[0]["status"]["code"], 2,
        "the failed attempt is an error"
    );
    assert_eq!(
        attr(attempts[1], "http.response.status_code")["intValue"],
        "200"
    );
    let exported = collector.bodies.lock().unwrap()[0].clone();
    assert_eq!(
        exported["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
        "gw-test"
    );

    // The provider was called inside the same trace, under the gateway's span.
    let seen = mock.requests();
    let sent = seen.last().unwrap()["headers"]["traceparent"]
        .as_str()
        .expect("traceparent sent upstream")
        .to_string();
    assert_eq!(
        sent,
        format!("00-{trace_id}-{}-01", server["spanId"].as_str().unwrap())
    );

    // No secret in what was exported.
    let text = serde_json::to_string(&*collector.bodies.lock().unwrap()).unwrap();
    assert!(!text.contains("vk-secret-traced") && !text.contains("sk-provider-hidden"));
}

#[test]
fn a_request_without_traceparent_starts_a_trace_and_bad_endpoints_are_refused() {
    let collector = Collector::start();
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&format!(
        "traces: {{endpoint: '{}'}}
providers: [{{name: p, kind: openai_compatible, base_url: {}}}]
virtual_keys: [{{id: vk-t, key: vk-secret-traced}}]
",
        collector.url,
        mock.base_url()
    ));
    let reply = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", "Bearer vk-secret-traced")],
        &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(reply.status, 200);
    let spans = collector.spans(2);
    let server = spans.iter().find(|s| s["kind"] == 2).expect("server span");
    assert!(server.get("parentSpanId").is_none(), "{server}");
    assert_eq!(server["traceId"].as_str().unwrap().len(), 32);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, "traces: {endpoint: 'ftp://nope'}\nproviders: []\n").unwrap();
    let mut child = std::process::Command::new(tollgate_e2e::bin_path("tollgate"))
        .args(["serve", "-c"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(err.contains("traces.endpoint"), "{err}");
    // `tollgate check` finds it too, with its position.
    let out = tollgate_e2e::run_tollgate(&["check", "-c", path.to_str().unwrap()]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("traces.endpoint") && text.contains(":1:"),
        "{text}"
    );
}
