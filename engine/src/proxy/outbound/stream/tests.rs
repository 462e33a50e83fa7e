use super::*;
use crate::guardrails::{Action, PiiKind, Stage};
use crate::plan::{GuardDetect, GuardrailPlan};
use crate::policy::Expr;

fn delta(index: u64, content: Option<&str>, finish: Option<&str>) -> String {
    let delta = match content {
        Some(c) => serde_json::json!({ "content": c }),
        None => serde_json::json!({}),
    };
    let chunk = serde_json::json!({
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-x",
        "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    format!("data: {chunk}\n\n")
}

fn text(content: &str) -> String {
    delta(0, Some(content), None)
}

fn stop() -> String {
    delta(0, None, Some("stop"))
}

const DONE: &str = "data: [DONE]\n\n";

fn pii() -> Redacting {
    Redacting::new(
        "pii".into(),
        Arc::new(Detector::pii(&[PiiKind::Email]).unwrap()),
    )
}

fn end_check(name: &str, detect: GuardDetect, action: Action) -> EndCheck {
    EndCheck {
        guardrails: vec![KeyGuardrail {
            guardrail: Arc::new(GuardrailPlan {
                name: name.into(),
                stage: Stage::Output,
                detect,
                action,
                sample_rate: 1.0,
            }),
            when: None,
        }],
        request: RequestData::default(),
        provider: "a".into(),
        model: "gpt-x".into(),
        prompt_estimate: 3,
    }
}

fn falcon(action: Action) -> EndCheck {
    let words = Detector::keywords("birds", &["falcon"]).unwrap();
    end_check("birds", GuardDetect::Text(Arc::new(words)), action)
}

fn guard(redacting: Vec<Redacting>, end: Option<EndCheck>) -> (StreamGuard, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    (StreamGuard::new(metrics.clone(), redacting, end), metrics)
}

/// Feeds events (then the end of the upstream) and returns what the client gets.
fn run(g: &mut StreamGuard, events: &[String], usage: Option<Usage>) -> String {
    let mut out = BytesMut::new();
    for e in events {
        g.event(e.as_bytes(), usage, &mut out);
    }
    g.end(usage, &mut out);
    String::from_utf8(out.to_vec()).unwrap()
}

/// Every event parsed: chunks as JSON, `[DONE]` as a string. Panics on anything else.
fn events(sse: &str) -> Vec<Value> {
    let body = sse.strip_suffix("\n\n").expect("ends with a blank line");
    body.split("\n\n")
        .map(|e| {
            let data = e.strip_prefix("data: ").expect("a data event");
            if data == "[DONE]" {
                Value::from("[DONE]")
            } else {
                serde_json::from_str(data).expect("valid JSON")
            }
        })
        .collect()
}

fn content_of(events: &[Value], index: u64) -> String {
    events
        .iter()
        .flat_map(|e| e["choices"].as_array().into_iter().flatten())
        .filter(|c| c["index"] == index)
        .filter_map(|c| c["delta"]["content"].as_str())
        .collect()
}

fn count(metrics: &Metrics, guardrail: &str, action: &str) -> Option<u64> {
    let prefix = format!(
        "tollgate_guardrail_actions_total{{guardrail=\"{guardrail}\",action=\"{action}\"}} "
    );
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
}

#[test]
fn email_split_across_chunks_is_redacted_and_every_event_stays_a_chunk() {
    let (mut g, metrics) = guard(vec![pii()], None);
    let out = run(
        &mut g,
        &[
            text(""),
            text("write to jane.do"),
            text("e@exam"),
            text("ple.com please"),
            stop(),
            DONE.into(),
        ],
        None,
    );
    let ev = events(&out);
    assert_eq!(content_of(&ev, 0), "write to [REDACTED:EMAIL] please");
    assert!(!out.contains("jane"), "{out}");
    for e in &ev[..ev.len() - 1] {
        assert_eq!(
            (&e["id"], &e["model"], &e["created"], &e["object"]),
            (
                &Value::from("chatcmpl-9"),
                &Value::from("gpt-x"),
                &Value::from(1700000000),
                &Value::from("chat.completion.chunk")
            ),
            "{e}"
        );
    }
    // The held word comes in an added chunk just before the finish, which stays last.
    let n = ev.len();
    assert_eq!(ev[n - 1], "[DONE]");
    assert_eq!(ev[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(ev[n - 3]["choices"][0]["delta"]["content"], "please");
    assert_eq!(ev[n - 3]["choices"][0]["finish_reason"], Value::Null);
    assert_eq!(n, 7, "one added chunk: {out}");
    assert_eq!(count(&metrics, "pii", "redact"), Some(1));
}

#[test]
fn a_finish_chunk_with_content_takes_the_held_text() {
    let (mut g, _) = guard(vec![pii()], None);
    let out = run(
        &mut g,
        &[
            text("mail jane@exa"),
            delta(0, Some("mple.com now"), Some("length")),
            DONE.into(),
        ],
        None,
    );
    let ev = events(&out);
    assert_eq!(ev.len(), 3, "{out}");
    assert_eq!(
        ev[1]["choices"][0]["delta"]["content"],
        "[REDACTED:EMAIL] now"
    );
    assert_eq!(ev[1]["choices"][0]["finish_reason"], "length");
}

#[test]
fn choices_are_redacted_separately() {
    let (mut g, _) = guard(vec![pii()], None);
    let out = run(
        &mut g,
        &[
            delta(0, Some("a: jo@"), None),
            delta(1, Some("b: al@"), None),
            delta(1, Some("y.org"), None),
            delta(0, Some("x.com"), None),
            delta(0, None, Some("stop")),
            delta(1, None, Some("stop")),
            DONE.into(),
        ],
        None,
    );
    let ev = events(&out);
    assert_eq!(content_of(&ev, 0), "a: [REDACTED:EMAIL]");
    assert_eq!(content_of(&ev, 1), "b: [REDACTED:EMAIL]");
}

#[test]
fn events_without_answer_text_pass_byte_for_byte() {
    let (mut g, _) = guard(vec![pii()], Some(falcon(Action::Flag)));
    let tool = "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"to\\\":\\\"a@b.co\\\"}\"}}]}}]}\n\n";
    let events = [
        ": keep-alive\n\n".to_string(),
        tool.to_string(),
        "data: {\"error\":{\"message\":\"upstream hiccup\"}}\n\n".to_string(),
        "data: not json\n\n".to_string(),
        DONE.to_string(),
    ];
    assert_eq!(run(&mut g, &events, None), events.concat());
}

#[test]
fn block_at_the_end_replaces_done_with_an_error_event() {
    let (mut g, metrics) = guard(vec![pii()], Some(falcon(Action::Block)));
    let out = run(
        &mut g,
        &[text("the fal"), text("con flies"), stop(), DONE.into()],
        None,
    );
    let ev = events(&out);
    let n = ev.len();
    assert_eq!(ev[n - 1], "[DONE]");
    assert_eq!(out.matches("[DONE]").count(), 1, "{out}");
    let err = &ev[n - 2]["error"];
    assert_eq!(err["type"], "guardrail_blocked");
    assert_eq!(err["guardrail"], "birds");
    assert!(err["message"].as_str().unwrap().contains("birds"));
    assert_eq!(count(&metrics, "birds", "block"), Some(1));
    assert_eq!(count(&metrics, "pii", "redact"), None);
}

#[test]
fn flag_at_the_end_is_counted_and_the_stream_ends_normally() {
    let (mut g, metrics) = guard(Vec::new(), Some(falcon(Action::Flag)));
    let events_in = [text("a falcon"), stop(), DONE.into()];
    // Without redaction, chunks are forwarded as they came.
    assert_eq!(run(&mut g, &events_in, None), events_in.concat());
    assert_eq!(count(&metrics, "birds", "flag"), Some(1));
}

#[test]
fn end_checks_see_the_redacted_text_and_the_response_variable() {
    // A block on emails never fires after a redaction removed them, as in a whole answer.
    let email = Detector::pii(&[PiiKind::Email]).unwrap();
    let end = end_check(
        "no-email",
        GuardDetect::Text(Arc::new(email)),
        Action::Block,
    );
    let (mut g, _) = guard(vec![pii()], Some(end));
    let out = run(&mut g, &[text("x@y.com"), stop(), DONE.into()], None);
    assert!(!out.contains("error"), "{out}");

    let expr = Expr::compile(
        r#"response.finish_reason == "length" && response.completion_tokens > 5 && response.content.contains("jane") && response.model == "gpt-x""#,
    )
    .unwrap();
    let end = end_check("cut-short", GuardDetect::Cel(expr), Action::Block);
    let (mut g, _) = guard(vec![pii()], Some(end));
    let usage = Some(Usage {
        prompt: 3,
        cached: 0,
        completion: 9,
    });
    let out = run(
        &mut g,
        &[
            text("to jane@x.com"),
            delta(0, None, Some("length")),
            DONE.into(),
        ],
        usage,
    );
    assert!(out.contains("\"guardrail\":\"cut-short\""), "{out}");
    assert!(!out.contains("jane"), "{out}");
}

#[test]
fn a_stream_cut_short_still_gets_its_held_text_and_no_done() {
    let (mut g, _) = guard(vec![pii()], None);
    let out = run(&mut g, &[text("hello jane@x.com and "), text("more")], None);
    let ev = events(&out);
    assert_eq!(content_of(&ev, 0), "hello [REDACTED:EMAIL] and more");
    assert!(!out.contains("[DONE]"));
}

#[test]
fn a_stream_dropped_mid_way_counts_what_was_redacted() {
    let (mut g, metrics) = guard(vec![pii()], None);
    let mut out = BytesMut::new();
    g.event(text("jane@x.com is ").as_bytes(), None, &mut out);
    drop(g);
    assert_eq!(count(&metrics, "pii", "redact"), Some(1));

    let (mut g, metrics) = guard(vec![pii()], None);
    run(&mut g, &[text("nothing here"), stop(), DONE.into()], None);
    drop(g);
    assert_eq!(count(&metrics, "pii", "redact"), None);
}

#[test]
fn multi_line_data_is_joined() {
    assert_eq!(
        sse_data(b"data: {\"a\":\ndata: 1}\n\n").as_deref(),
        Some(&b"{\"a\":\n1}"[..])
    );
    assert_eq!(
        sse_data(b"data:[DONE]\r\n\r\n").as_deref(),
        Some(&b"[DONE]"[..])
    );
    assert_eq!(sse_data(b": comment\n\n"), None);
}
