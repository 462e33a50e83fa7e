//! A relayed stream whose upstream breaks: the client gets what came before, then one error
//! event and no `[DONE]`; after `[DONE]` nothing the upstream does matters.

use super::{Relay, StreamBounds};
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

const CONTENT: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hello \"}}]}\n\n";
const DONE: &str = "data: [DONE]\n\n";

enum Step {
    Data(&'static str),
    Fail,
    /// Nothing more, and no end: a silent upstream.
    Stall,
}

/// An upstream body that plays a script.
struct Script(VecDeque<Step>);

impl Body for Script {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.0.pop_front() {
            Some(Step::Data(s)) => {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(s.as_bytes())))))
            }
            Some(Step::Fail) => Poll::Ready(Some(Err(std::io::Error::other("connection reset")))),
            Some(Step::Stall) => {
                self.0.push_front(Step::Stall);
                Poll::Pending
            }
            None => Poll::Ready(None),
        }
    }
}

async fn relay(steps: Vec<Step>, idle_ms: u64, total_ms: u64) -> String {
    let bounds = StreamBounds {
        provider: "p".into(),
        deadline: tokio::time::Instant::now() + Duration::from_millis(total_ms),
        total: Duration::from_millis(total_ms),
        idle: Duration::from_millis(idle_ms),
    };
    let relay = Relay::new(Script(steps.into()), None, 10, false, bounds);
    let bytes = relay
        .collect()
        .await
        .expect("a relay never fails")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The error event at the end of `out`, after `before`.
fn error_after(out: &str, before: &str) -> serde_json::Value {
    let rest = out.strip_prefix(before).unwrap_or_else(|| panic!("{out}"));
    let json = rest
        .strip_prefix("data: ")
        .and_then(|r| r.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("{out}"));
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["error"].clone()
}

#[tokio::test]
async fn a_whole_stream_passes_unchanged() {
    let out = relay(vec![Step::Data(CONTENT), Step::Data(DONE)], 1000, 10_000).await;
    assert_eq!(out, format!("{CONTENT}{DONE}"));
}

#[tokio::test]
async fn a_dropped_connection_ends_with_an_upstream_error() {
    let out = relay(
        vec![Step::Data(CONTENT), Step::Data("data: {\"cho"), Step::Fail],
        1000,
        10_000,
    )
    .await;
    // The half event is not passed on: it would run into the error event.
    let e = error_after(&out, CONTENT);
    assert_eq!(e["type"], "upstream_error");
    assert!(e["message"].as_str().unwrap().contains("connection reset"));
    assert!(!out.contains("[DONE]"));
}

#[tokio::test]
async fn a_silent_upstream_ends_after_the_idle_timeout() {
    let started = std::time::Instant::now();
    let out = relay(vec![Step::Data(CONTENT), Step::Stall], 100, 10_000).await;
    assert!(started.elapsed() >= Duration::from_millis(100));
    let e = error_after(&out, CONTENT);
    assert_eq!(e["type"], "upstream_timeout");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("100 ms (stream_idle_timeout)"));
}

#[tokio::test]
async fn before_the_first_chunk_only_the_total_timeout_applies() {
    let started = std::time::Instant::now();
    let out = relay(vec![Step::Stall], 20, 200).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    let e = error_after(&out, "");
    assert!(e["message"].as_str().unwrap().contains("200 ms (timeout)"));
}

#[tokio::test]
async fn a_malformed_event_ends_the_stream_there() {
    let out = relay(
        vec![
            Step::Data(CONTENT),
            Step::Data("data: {\"choices\":[{\"del\n\n"),
            Step::Data(CONTENT),
            Step::Data(DONE),
        ],
        1000,
        10_000,
    )
    .await;
    let e = error_after(&out, CONTENT);
    assert_eq!(e["type"], "upstream_error");
    assert!(e["message"].as_str().unwrap().contains("not valid JSON"));
}

#[tokio::test]
async fn after_done_a_silent_or_broken_upstream_just_ends() {
    let out = relay(
        vec![Step::Data(CONTENT), Step::Data(DONE), Step::Stall],
        50,
        10_000,
    )
    .await;
    assert_eq!(out, format!("{CONTENT}{DONE}"));
    let out = relay(
        vec![Step::Data(CONTENT), Step::Data(DONE), Step::Fail],
        50,
        10_000,
    )
    .await;
    assert_eq!(out, format!("{CONTENT}{DONE}"));
}

#[tokio::test]
async fn comments_and_non_json_lines_that_are_not_data_pass() {
    let out = relay(
        vec![
            Step::Data(": keep-alive\n\n"),
            Step::Data("data: \n\n"),
            Step::Data(CONTENT),
            Step::Data(DONE),
        ],
        1000,
        10_000,
    )
    .await;
    assert_eq!(out, format!(": keep-alive\n\ndata: \n\n{CONTENT}{DONE}"));
}
