//! Output guardrails on a streamed chat completion, as a [`Rewrite`] of its SSE events.
//!
//! Each choice's content deltas go through a [`StreamRedactor`], which emits only text no
//! later delta can change and holds back a bounded tail, so a match split across chunks is
//! still redacted. A chunk whose text changed is re-serialized; every other event is forwarded
//! as it came. Held text is sent before the choice's `finish_reason` chunk (inside it when that
//! chunk carries content, else as an added delta chunk with the stream's id, model and
//! created), and whatever is still held before `[DONE]` or the end of the stream.
//!
//! `block` and `flag` need the whole answer, so they run at `[DONE]` (or when the upstream
//! ends without it), over the answer as redacted. The client already has the text by then: a
//! block replaces `[DONE]` with an error event and then `[DONE]`, so the client sees the answer
//! fail; a flag is counted and logged.

use super::{blocked, record};
use crate::admission::estimate::Usage;
use crate::admission::guard;
use crate::guardrails::{redact, Detector, StreamRedactor};
use crate::plan::KeyGuardrail;
use crate::policy::{RequestData, ResponseData};
use crate::proxy::relay::Rewrite;
use crate::telemetry::Metrics;
use bytes::BytesMut;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::Arc;

/// A redacting guardrail that applies to this stream.
pub struct Redacting {
    name: Arc<str>,
    detector: Arc<Detector>,
}

impl Redacting {
    pub fn new(name: Arc<str>, detector: Arc<Detector>) -> Redacting {
        Redacting { name, detector }
    }
}

/// The `block`/`flag` guardrails, run when the stream ends, and what they may read.
pub struct EndCheck {
    pub guardrails: Vec<KeyGuardrail>,
    /// The request variables those guardrails read, copied before the handler returned.
    pub request: RequestData,
    pub provider: String,
    pub model: String,
    /// Prompt tokens estimated before the call, for a stream that reports no usage.
    pub prompt_estimate: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// `[DONE]` seen (or the upstream ended) and not blocked: the rest passes as is.
    Passed,
    /// Blocked at the end: the error and `[DONE]` were sent; nothing more is.
    Blocked,
}

/// One choice of the answer (`n` > 1 streams several, told apart by `index`).
struct ChoiceText {
    index: u64,
    redactor: Option<StreamRedactor>,
    /// The text as the provider sent it: the end checks and redaction counts read it.
    original: String,
}

pub struct StreamGuard {
    metrics: Arc<Metrics>,
    redacting: Vec<Redacting>,
    end: Option<EndCheck>,
    choices: Vec<ChoiceText>,
    /// The first chunk's fields other than `choices` (id, object, created, model, ...), for
    /// the chunks the gateway adds.
    template: Option<Map<String, Value>>,
    /// Of the first choice that finished.
    finish_reason: String,
    state: State,
}

impl StreamGuard {
    pub fn new(
        metrics: Arc<Metrics>,
        redacting: Vec<Redacting>,
        end: Option<EndCheck>,
    ) -> StreamGuard {
        StreamGuard {
            metrics,
            redacting,
            end,
            choices: Vec::new(),
            template: None,
            finish_reason: String::new(),
            state: State::Open,
        }
    }

    fn choice(&mut self, index: u64) -> &mut ChoiceText {
        let at = match self.choices.iter().position(|c| c.index == index) {
            Some(at) => at,
            None => {
                let redactor = (!self.redacting.is_empty()).then(|| {
                    StreamRedactor::new(self.redacting.iter().map(|r| r.detector.clone()).collect())
                });
                self.choices.push(ChoiceText {
                    index,
                    redactor,
                    original: String::new(),
                });
                self.choices.len() - 1
            }
        };
        &mut self.choices[at]
    }

    /// One `data:` chunk: its content deltas redacted, held text flushed before a finish.
    fn chunk(&mut self, event: &[u8], data: &[u8], out: &mut BytesMut) {
        // Anything else (a provider's mid-stream error, say) carries no answer text.
        let Ok(Value::Object(mut chunk)) = serde_json::from_slice::<Value>(data) else {
            out.extend_from_slice(event);
            return;
        };
        if self.template.is_none() {
            self.template = Some(template(&chunk));
        }
        let Some(Value::Array(choices)) = chunk.get_mut("choices") else {
            out.extend_from_slice(event);
            return;
        };
        let mut changed = false;
        let mut flushed = Vec::new();
        for choice in choices.iter_mut() {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let finish = choice.get("finish_reason").and_then(Value::as_str);
            if let (Some(f), true) = (finish, self.finish_reason.is_empty()) {
                self.finish_reason = f.to_string();
            }
            let finishing = finish.is_some();
            let state = self.choice(index);
            match choice.pointer_mut("/delta/content") {
                Some(Value::String(text)) => {
                    state.original.push_str(text);
                    let Some(r) = &mut state.redactor else {
                        continue;
                    };
                    let mut now = r.push(text);
                    if finishing {
                        now.push_str(&r.finish());
                    }
                    if now != *text {
                        *text = now;
                        changed = true;
                    }
                }
                _ if finishing => {
                    let held = state.redactor.as_mut().map(StreamRedactor::finish);
                    if let Some(held) = held.filter(|h| !h.is_empty()) {
                        flushed.push((index, held));
                    }
                }
                _ => {}
            }
        }
        for (index, text) in flushed {
            self.added_chunk(index, text, out);
        }
        if !changed {
            out.extend_from_slice(event);
        } else {
            write_event(out, &chunk);
        }
    }

    /// A content delta the provider did not send: held text, in the stream's own chunk shape.
    fn added_chunk(&self, index: u64, text: String, out: &mut BytesMut) {
        let mut chunk = self.template.clone().unwrap_or_default();
        chunk.insert(
            "choices".into(),
            serde_json::json!([{
                "index": index,
                "delta": {"content": text},
                "logprobs": null,
                "finish_reason": null,
            }]),
        );
        write_event(out, &chunk);
    }

    /// `[DONE]` or the end of the upstream: flush, count, run the end checks. True if blocked.
    fn close(&mut self, usage: Option<Usage>, out: &mut BytesMut) -> bool {
        let mut held = Vec::new();
        for c in &mut self.choices {
            if let Some(text) = c.redactor.as_mut().map(StreamRedactor::finish) {
                held.push((c.index, text));
            }
        }
        for (index, text) in held.into_iter().filter(|(_, t)| !t.is_empty()) {
            self.added_chunk(index, text, out);
        }
        let texts = self.count_redactions();
        let blocked = self.check_end(texts, usage, out);
        self.state = if blocked {
            State::Blocked
        } else {
            State::Passed
        };
        blocked
    }

    /// Counts each redacting guardrail that found something, as a whole answer would be
    /// counted: in order, each over the text the ones before it left. (The redactor merges all
    /// detectors into one pass and cannot say which matched.) Returns the redacted texts.
    fn count_redactions(&mut self) -> Vec<String> {
        self.choices.sort_by_key(|c| c.index);
        let mut texts: Vec<String> = self.choices.iter().map(|c| c.original.clone()).collect();
        for r in &self.redacting {
            let mut hit = false;
            for t in &mut texts {
                let found = r.detector.find(t);
                if !found.is_empty() {
                    *t = redact(t, &found);
                    hit = true;
                }
            }
            if hit {
                self.metrics.record_guardrail(&r.name, "redact");
            }
        }
        self.redacting.clear();
        texts
    }

    /// Runs the `block`/`flag` guardrails over the redacted answer; on a block, writes the
    /// error event and `[DONE]`.
    fn check_end(
        &mut self,
        mut texts: Vec<String>,
        usage: Option<Usage>,
        out: &mut BytesMut,
    ) -> bool {
        let Some(end) = self.end.take() else {
            return false;
        };
        let content = self
            .choices
            .iter()
            .map(|c| c.original.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let usage = usage.unwrap_or(Usage {
            prompt: end.prompt_estimate,
            cached: 0,
            completion: (content.chars().count() as u64).div_ceil(4),
        });
        let mut request = end.request;
        request.response = Some(ResponseData {
            content,
            finish_reason: std::mem::take(&mut self.finish_reason),
            prompt_tokens: usage.prompt as i64,
            completion_tokens: usage.completion as i64,
            provider: end.provider,
            model: end.model,
        });
        // Webhook guardrails were left out when the guard was built: none come back here.
        let mut webhooks = Vec::new();
        let report = guard::check(
            &end.guardrails,
            &request,
            &mut texts,
            &mut || fastrand::f64(),
            &mut webhooks,
        );
        record(&self.metrics, &report);
        for g in &report.flagged {
            tracing::info!(guardrail = %g, "streamed answer flagged by output guardrail");
        }
        let Some(g) = report.blocked_by else {
            return false;
        };
        tracing::info!(guardrail = %g, "streamed answer blocked by output guardrail");
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&blocked(&g).openai_body());
        out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
        true
    }
}

impl Rewrite for StreamGuard {
    fn event(&mut self, event: &[u8], usage: Option<Usage>, out: &mut BytesMut) {
        match self.state {
            State::Blocked => return,
            State::Passed => return out.extend_from_slice(event),
            State::Open => {}
        }
        let Some(data) = sse_data(event) else {
            return out.extend_from_slice(event);
        };
        if data.trim_ascii() == b"[DONE]" {
            if !self.close(usage, out) {
                out.extend_from_slice(event);
            }
            return;
        }
        self.chunk(event, &data, out);
    }

    fn end(&mut self, usage: Option<Usage>, out: &mut BytesMut) {
        if self.state == State::Open {
            self.close(usage, out);
        }
    }
}

impl Drop for StreamGuard {
    /// The client left (or the upstream broke) mid-stream: what was redacted still counts.
    fn drop(&mut self) {
        if self.state == State::Open {
            self.count_redactions();
        }
    }
}

/// The data of an SSE event (its `data:` lines joined by newlines), or `None` if it has none.
fn sse_data(event: &[u8]) -> Option<Cow<'_, [u8]>> {
    let mut lines = event
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter_map(|l| l.strip_prefix(b"data:"))
        .map(|d| d.strip_prefix(b" ").unwrap_or(d));
    let first = lines.next()?;
    match lines.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut joined = [first, second].join(&b'\n');
            for more in lines {
                joined.push(b'\n');
                joined.extend_from_slice(more);
            }
            Some(Cow::Owned(joined))
        }
    }
}

/// A chunk's fields other than `choices`, for chunks the gateway adds; a real usage object
/// becomes `null` (usage is reported once, by the provider's own chunk).
fn template(chunk: &Map<String, Value>) -> Map<String, Value> {
    chunk
        .iter()
        .filter(|(k, _)| *k != "choices")
        .map(|(k, v)| {
            let v = if k == "usage" { Value::Null } else { v.clone() };
            (k.clone(), v)
        })
        .collect()
}

fn write_event(out: &mut BytesMut, chunk: &Map<String, Value>) {
    // Serializing a map of JSON values cannot fail; if it did, dropping the chunk is the
    // safe side (its text may be what needed redacting).
    if let Ok(json) = serde_json::to_vec(chunk) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&json);
        out.extend_from_slice(b"\n\n");
    }
}

#[cfg(test)]
mod tests;
