//! Output-stage guardrails through the real gateway: the provider's answer (whole or streamed)
//! is redacted, blocked or flagged before the client gets it.

use serde_json::{json, Value};
use tollgate_e2e::{get, numbers_masked, post_json, Gateway, Mock, Reply};

const EMAIL_REPLY: &str = "write to jane.doe@example.com please";

const GUARDRAILS: &str = "guardrails:
  - name: pii
    stage: output
    detect: {pii: [email]}
    action: redact
  - name: launch-codes
    stage: both
    when: 'headers[?\"x-strict\"].orValue(\"\") == \"1\"'
    detect: {keywords: [launch]}
    action: block
  - name: birds
    stage: output
    detect: {keywords: [falcon]}
    action: flag
  - name: noon-from-a
    stage: output
    when: 'headers[?\"x-cel\"].orValue(\"\") == \"1\"'
    detect: {cel: 'response.content.contains(\"noon\") && response.provider == \"a\" && response.completion_tokens == 5'}
    action: block
";

fn gateway(mock: &Mock, guardrails: &str) -> Gateway {
    Gateway::start(&format!(
        "providers:
  - {{name: a, kind: openai_compatible, base_url: {}, models: ['*']}}
virtual_keys:
  - {{id: vk, key: k, rate_limit: {{tokens: {{limit: 1000000, window: 1h}}}}}}
{guardrails}",
        mock.base_url()
    ))
}

fn chat(url: &str, headers: &[(&str, &str)], stream: bool) -> Reply {
    let mut h = vec![("authorization", "Bearer k")];
    h.extend_from_slice(headers);
    post_json(
        &format!("{url}/v1/chat/completions"),
        &h,
        &json!({
            "model": "gpt-x",
            "stream": stream,
            "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
            "messages": [{"role": "user", "content": "who should I write to?"}],
        }),
    )
}

/// Every event of an SSE body: chunks as JSON, `[DONE]` as a string. Fails on anything else.
fn events(body: &str) -> Vec<Value> {
    let body = body
        .strip_suffix("\n\n")
        .unwrap_or_else(|| panic!("stream does not end with a blank line: {body:?}"));
    body.split("\n\n")
        .map(|e| {
            let data = e
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"));
            if data == "[DONE]" {
                Value::from("[DONE]")
            } else {
                serde_json::from_str(data).unwrap_or_else(|err| panic!("{err}: {data}"))
            }
        })
        .collect()
}

fn streamed_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn metric(gw: &Gateway, guardrail: &str, action: &str) -> Option<u64> {
    let prefix = format!(
        "tollgate_guardrail_actions_total{{guardrail=\"{guardrail}\",action=\"{action}\"}} "
    );
    get(&format!("{}/metrics", gw.admin_url), &[])
        .body
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
}

#[test]
fn a_whole_answer_is_redacted_before_the_client() {
    let mock = Mock::start(&["--reply", EMAIL_REPLY]);
    let gw = gateway(&mock, GUARDRAILS);
    let r = chat(&gw.url, &[], false);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "write to [REDACTED:EMAIL] please"
    );
    assert!(!r.body.contains("jane"), "{}", r.body);
    // The rest of the completion is untouched.
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(r.header("x-tollgate-guardrail-flags"), None);
    assert_eq!(metric(&gw, "pii", "redact"), Some(1));
}

#[test]
fn an_email_split_across_stream_chunks_arrives_redacted_in_a_valid_stream() {
    let mock = Mock::start(&["--reply", EMAIL_REPLY, "--stream-chunks", "2"]);
    // The mock really splits the address: no chunk holds all of it.
    let direct = chat(&mock.url, &[], true);
    let pieces: Vec<String> = events(&direct.body)
        .iter()
        .filter_map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(pieces.concat(), EMAIL_REPLY);
    assert!(
        pieces.iter().all(|p| !p.contains("jane.doe@example.com")),
        "{pieces:?}"
    );

    let gw = gateway(&mock, GUARDRAILS);
    let r = chat(&gw.url, &[], true);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("jane"), "{}", r.body);
    let ev = events(&r.body);
    assert_eq!(streamed_text(&ev), "write to [REDACTED:EMAIL] please");
    let (last, chunks) = ev.split_last().unwrap();
    assert_eq!(*last, "[DONE]");
    // Every chunk, the one the gateway added included, belongs to the same completion.
    for c in chunks {
        assert_eq!(c["id"], chunks[0]["id"], "{c}");
        assert_eq!(c["model"], "gpt-x", "{c}");
        assert_eq!(c["created"], chunks[0]["created"], "{c}");
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
    }
    // Finish, then the usage the client asked for, then [DONE].
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["usage"]["completion_tokens"], 4);
    assert_eq!(metric(&gw, "pii", "redact"), Some(1));
}

#[test]
fn a_blocking_output_guardrail_answers_403_and_still_charges_the_usage() {
    let mock = Mock::start(&["--reply", "the launch is at noon"]);
    let gw = gateway(&mock, GUARDRAILS);
    let r = chat(&gw.url, &[("x-strict", "1")], false);
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (403, "guardrail_blocked"),
        "{}",
        r.body
    );
    assert_eq!(r.json()["error"]["guardrail"], "launch-codes");
    assert!(!r.body.contains("noon"), "{}", r.body);
    // The provider answered (and billed): the tokens count against the key.
    assert_eq!(mock.requests().len(), 1);
    assert!(gw.used("virtual_key:vk", "tokens").as_u64().unwrap() > 0);
    assert_eq!(metric(&gw, "launch-codes", "block"), Some(1));

    // The `when` scopes it: without the header the answer passes.
    assert_eq!(chat(&gw.url, &[], false).status, 200);
    // A `cel` detector reads `response`.
    let r = chat(&gw.url, &[("x-cel", "1")], false);
    assert_eq!(r.json()["error"]["guardrail"], "noon-from-a", "{}", r.body);

    // A stream has sent the text by the end: it ends with the error event, then [DONE].
    let r = chat(&gw.url, &[("x-strict", "1")], true);
    assert_eq!(r.status, 200);
    let ev = events(&r.body);
    let n = ev.len();
    assert_eq!(ev[n - 1], "[DONE]");
    assert_eq!(ev[n - 2]["error"]["type"], "guardrail_blocked");
    assert_eq!(ev[n - 2]["error"]["guardrail"], "launch-codes");
    assert_eq!(r.body.matches("[DONE]").count(), 1);
    assert_eq!(metric(&gw, "launch-codes", "block"), Some(2));
}

#[test]
fn a_flagging_output_guardrail_sets_the_header() {
    let mock = Mock::start(&["--reply", "a falcon flew by"]);
    let gw = gateway(&mock, GUARDRAILS);
    let r = chat(&gw.url, &[], false);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-tollgate-guardrail-flags"), Some("birds"));
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "a falcon flew by"
    );
    assert_eq!(metric(&gw, "birds", "flag"), Some(1));
    // On a stream the headers are gone by the end: counted, and the stream ends normally.
    let r = chat(&gw.url, &[], true);
    assert_eq!(streamed_text(&events(&r.body)), "a falcon flew by");
    assert_eq!(metric(&gw, "birds", "flag"), Some(2));
}

/// The parts of a completion that differ between two calls: the mock numbers its ids and
/// stamps the time.
fn normalized(body: &str) -> String {
    numbers_masked(body, &["\"chatcmpl-mock-", "\"created\":"])
}

#[test]
fn without_output_guardrails_a_stream_passes_byte_for_byte() {
    let mock = Mock::start(&["--reply", EMAIL_REPLY, "--stream-chunks", "3"]);
    // An input guardrail only: the answer is not the gateway's business.
    let input_only = "guardrails:
  - {name: pii, stage: input, detect: {pii: [email]}, action: redact}
";
    let gw = gateway(&mock, input_only);
    let direct = chat(&mock.url, &[], true);
    let via = chat(&gw.url, &[], true);
    assert_eq!(via.status, 200, "{}", via.body);
    assert_eq!(streamed_text(&events(&via.body)), EMAIL_REPLY);
    assert_eq!(normalized(&via.body), normalized(&direct.body));
    assert_ne!(normalized(&direct.body), direct.body, "ids were normalized");
    assert_eq!(metric(&gw, "pii", "redact"), None);
}

/// A webhook detector that says `flagged: true` to everything, keeping what it was sent.
fn flagging_webhook() -> (String, std::sync::mpsc::Receiver<Value>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/check", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(&stream);
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
            let answer = r#"{"flagged": true}"#;
            let _ = write!(
                &stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, rx)
}

#[test]
fn a_webhook_output_guardrail_sees_the_redacted_answer() {
    let mock = Mock::start(&["--reply", EMAIL_REPLY]);
    let (url, sent) = flagging_webhook();
    let gw = gateway(
        &mock,
        &format!(
            "{GUARDRAILS}  - name: vendor-check
    stage: output
    detect: {{webhook: {{url: {url}, timeout: 2s, on_error: allow}}}}
    action: flag
"
        ),
    );
    let r = chat(&gw.url, &[], false);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-tollgate-guardrail-flags"), Some("vendor-check"));
    let asked = sent
        .recv_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(asked["stage"], "output");
    assert_eq!(asked["guardrail"], "vendor-check");
    assert_eq!(asked["texts"], json!(["write to [REDACTED:EMAIL] please"]));
    assert_eq!(metric(&gw, "vendor-check", "flag"), Some(1));
}
