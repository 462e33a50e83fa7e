//! Gemini `streamGenerateContent?alt=sse`: every `data:` event is a whole
//! `GenerateContentResponse` holding the next piece of the answer; the last one carries the
//! finish reason and the full usage. There is no end marker: the stream just ends.
//!
//! Function calls arrive whole, never as argument fragments: the decoder emits each as a start
//! and one arguments delta, and the encoder holds a call's fragments back until it is complete
//! (the next call, or the end) and then writes it as one `functionCall` part.

use serde_json::{json, Value};

use super::sse::SseEvent;
use super::{write_sse_json, FinishReason, StreamError, StreamEvent, Usage};
use crate::translate::gemini::{finish_reason, finish_reason_to_gemini, usage_to_gemini};
use crate::translate::ir;

#[derive(Debug, Default)]
pub struct ContentDecoder {
    started: bool,
    tool_count: u32,
}

impl ContentDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn decode(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), StreamError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data)?;
        if let Some(err) = chunk.get("error") {
            out.push(StreamEvent::Error {
                error_type: "upstream_error".to_owned(),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the provider reported an error")
                    .to_owned(),
            });
            return Ok(());
        }
        if !chunk.is_object() {
            return Err(StreamError::InvalidJson(
                "a Gemini stream event must be an object".into(),
            ));
        }
        if !self.started {
            self.started = true;
            let text = |k: &str| chunk.get(k).and_then(Value::as_str).unwrap_or_default();
            out.push(StreamEvent::Start {
                id: text("responseId").to_owned(),
                model: text("modelVersion").to_owned(),
            });
        }
        let candidate = chunk.pointer("/candidates/0");
        let parts = candidate
            .and_then(|c| c.pointer("/content/parts"))
            .and_then(Value::as_array);
        for part in parts.into_iter().flatten() {
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                out.push(StreamEvent::TextDelta {
                    text: text.to_owned(),
                });
            } else if let Some(call) = part.get("functionCall") {
                let index = self.tool_count;
                self.tool_count += 1;
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id: call
                        .get("id")
                        .and_then(Value::as_str)
                        .map_or_else(|| format!("call_{index}"), str::to_owned),
                    name: call
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                });
                let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
                out.push(StreamEvent::ToolArgumentsDelta {
                    index,
                    json_fragment: args.to_string(),
                });
            }
        }
        if let Some(usage) = chunk.get("usageMetadata") {
            let n = |k: &str| usage.get(k).and_then(Value::as_u64);
            // Early chunks report the prompt only; output counts arrive with the last one.
            let output =
                n("candidatesTokenCount").map(|c| c + n("thoughtsTokenCount").unwrap_or(0));
            out.push(StreamEvent::Usage(Usage {
                input: n("promptTokenCount"),
                output,
                cached_input: n("cachedContentTokenCount"),
                cache_creation: None,
            }));
        }
        if let Some(reason) = candidate
            .and_then(|c| c.get("finishReason"))
            .and_then(Value::as_str)
        {
            let reason = match finish_reason(reason, self.tool_count > 0) {
                ir::FinishReason::Stop => FinishReason::Stop,
                ir::FinishReason::Length => FinishReason::Length,
                ir::FinishReason::ToolCalls => FinishReason::ToolCalls,
                ir::FinishReason::ContentFilter => FinishReason::ContentFilter,
                ir::FinishReason::Other(_) => FinishReason::Other,
            };
            out.push(StreamEvent::Finish { reason });
        }
        Ok(())
    }
}

/// A tool call whose arguments are still arriving.
#[derive(Debug)]
struct PendingCall {
    index: u32,
    id: String,
    name: String,
    arguments: String,
}

#[derive(Debug, Default)]
pub struct ContentEncoder {
    id: String,
    model: String,
    calls: Vec<PendingCall>,
    finish: Option<FinishReason>,
    usage: Usage,
    ended: bool,
}

impl ContentEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match event {
            StreamEvent::Start { id, model } => {
                id.clone_into(&mut self.id);
                model.clone_into(&mut self.model);
            }
            StreamEvent::TextDelta { text } => {
                if !text.is_empty() {
                    self.flush_calls(out);
                    self.chunk(out, vec![json!({"text": text})], false);
                }
            }
            StreamEvent::ToolCallStart { index, id, name } => self.calls.push(PendingCall {
                index: *index,
                id: id.clone(),
                name: name.clone(),
                arguments: String::new(),
            }),
            StreamEvent::ToolArgumentsDelta {
                index,
                json_fragment,
            } => {
                if let Some(call) = self.calls.iter_mut().find(|c| c.index == *index) {
                    call.arguments.push_str(json_fragment);
                }
            }
            StreamEvent::Finish { reason } => self.finish = Some(*reason),
            StreamEvent::Usage(usage) => self.usage.merge(usage),
            StreamEvent::Error { message, .. } => {
                let body =
                    json!({"error": {"code": 502, "message": message, "status": "UNAVAILABLE"}});
                write_sse_json(out, None, &body);
                self.ended = true;
            }
            StreamEvent::Done => {
                let parts = self.take_calls();
                self.chunk(out, parts, true);
                self.ended = true;
            }
        }
    }

    /// Complete calls as `functionCall` parts, in the order they started. Arguments that are
    /// not a JSON object (a model's malformed output) are passed as `{}` rather than dropped.
    fn take_calls(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.calls)
            .into_iter()
            .map(|c| {
                let args = match serde_json::from_str::<Value>(&c.arguments) {
                    Ok(obj @ Value::Object(_)) => obj,
                    _ => json!({}),
                };
                json!({"functionCall": {"id": c.id, "name": c.name, "args": args}})
            })
            .collect()
    }

    fn flush_calls(&mut self, out: &mut Vec<u8>) {
        if !self.calls.is_empty() {
            let parts = self.take_calls();
            self.chunk(out, parts, false);
        }
    }

    fn chunk(&self, out: &mut Vec<u8>, parts: Vec<Value>, last: bool) {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        let mut body = json!({"modelVersion": self.model, "responseId": self.id});
        if last {
            let reason = match self.finish {
                Some(FinishReason::Length) => ir::FinishReason::Length,
                Some(FinishReason::ContentFilter) => ir::FinishReason::ContentFilter,
                _ => ir::FinishReason::Stop,
            };
            candidate["finishReason"] = finish_reason_to_gemini(&reason).into();
            if self.usage != Usage::default() {
                body["usageMetadata"] = usage_to_gemini(&ir::Usage {
                    input_tokens: self.usage.input.unwrap_or(0),
                    output_tokens: self.usage.output.unwrap_or(0),
                    cached_input_tokens: self.usage.cached_input.unwrap_or(0),
                    cache_creation_input_tokens: 0,
                });
            }
        }
        body["candidates"] = json!([candidate]);
        write_sse_json(out, None, &body);
    }
}
