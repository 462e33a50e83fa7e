//! The OpenAI Responses API stream, as an encoder only (the gateway answers Responses clients
//! and never reads this format from a provider): `response.created`, `response.in_progress`,
//! then per output item `response.output_item.added`, its content or argument deltas and
//! `response.output_item.done`, and finally `response.completed` (or `response.incomplete`)
//! carrying the whole response object. Every event names its type in `event:` and in the
//! payload, with a `sequence_number` counting from 0.

use serde_json::{json, Value};

use super::{write_sse_json, FinishReason, StreamEvent, Usage};
use crate::translate::ir;
use crate::translate::responses::{
    custom_input, custom_tool_call_item, envelope, function_call_item, message_item, output_text,
    response_id, usage_json, ResponseStatus,
};

/// A message item still receiving text.
#[derive(Debug)]
struct OpenText {
    output_index: usize,
    item_id: String,
    text: String,
}

/// A function-call item still receiving arguments. Chat Completions may interleave the
/// argument deltas of parallel calls, so several can be open at once.
#[derive(Debug)]
struct OpenCall {
    output_index: usize,
    item_id: String,
    /// The IR's index of this tool call.
    index: u32,
    call_id: String,
    name: String,
    arguments: String,
    /// A call of one of the request's custom tools: its arguments are kept until the call
    /// ends and then sent as one `input` delta (the `input` string inside the JSON cannot be
    /// cut out of partial arguments reliably).
    custom: bool,
}

#[derive(Debug, Default)]
pub struct ResponsesEncoder {
    id: String,
    model: String,
    created_at: u64,
    started: bool,
    sequence: u64,
    text: Option<OpenText>,
    calls: Vec<OpenCall>,
    /// Items opened so far (the next item's `output_index`).
    items: usize,
    /// Finished items with their output index, for the final `response` object.
    done_items: Vec<(usize, Value)>,
    finish: Option<FinishReason>,
    usage: Usage,
    ended: bool,
    /// The request's custom tools, whose calls are `custom_tool_call` items.
    custom_tools: Vec<String>,
}

impl ResponsesEncoder {
    pub fn new(created_at: i64) -> Self {
        ResponsesEncoder {
            created_at: u64::try_from(created_at).unwrap_or(0),
            ..Self::default()
        }
    }

    /// Calls of the tools named in `names` become `custom_tool_call` items.
    pub fn set_custom_tools(&mut self, names: Vec<String>) {
        self.custom_tools = names;
    }

    /// True once the final event or an error has been written; later events are ignored.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match event {
            StreamEvent::Start { id, model } => {
                if !self.started {
                    self.id = response_id(id);
                    model.clone_into(&mut self.model);
                    self.start(out);
                }
            }
            StreamEvent::TextDelta { text } => {
                if text.is_empty() {
                    return;
                }
                self.start(out);
                if self.text.is_none() {
                    self.close_calls(out);
                    let output_index = self.next_index();
                    let item_id = format!("msg_{}_{output_index}", self.bare_id());
                    let item = message_item(&item_id, ResponseStatus::InProgress, Vec::new());
                    self.emit(
                        out,
                        "response.output_item.added",
                        json!({"output_index": output_index, "item": item}),
                    );
                    self.emit(
                        out,
                        "response.content_part.added",
                        json!({"item_id": item_id, "output_index": output_index,
                               "content_index": 0, "part": output_text("")}),
                    );
                    self.text = Some(OpenText {
                        output_index,
                        item_id,
                        text: String::new(),
                    });
                }
                let payload = self.text.as_mut().map(|open| {
                    open.text.push_str(text);
                    json!({"item_id": open.item_id, "output_index": open.output_index,
                        "content_index": 0, "delta": text, "logprobs": []})
                });
                if let Some(payload) = payload {
                    self.emit(out, "response.output_text.delta", payload);
                }
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.start(out);
                self.close_text(out);
                let output_index = self.next_index();
                let custom = self.custom_tools.contains(name);
                let (item_id, item) = if custom {
                    let item_id = format!("ctc_{}_{output_index}", self.bare_id());
                    let item = custom_tool_call_item(&item_id, id, name, "");
                    (item_id, item)
                } else {
                    let item_id = format!("fc_{}_{output_index}", self.bare_id());
                    let item = function_call_item(&item_id, id, name, "", "in_progress");
                    (item_id, item)
                };
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": output_index, "item": item}),
                );
                self.calls.push(OpenCall {
                    output_index,
                    item_id,
                    index: *index,
                    call_id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                    custom,
                });
            }
            StreamEvent::ToolArgumentsDelta {
                index,
                json_fragment,
            } => {
                let payload = self
                    .calls
                    .iter_mut()
                    .find(|c| c.index == *index && !json_fragment.is_empty())
                    .and_then(|call| {
                        call.arguments.push_str(json_fragment);
                        (!call.custom).then(|| {
                            json!({"item_id": call.item_id, "output_index": call.output_index,
                                "delta": json_fragment})
                        })
                    });
                if let Some(payload) = payload {
                    self.emit(out, "response.function_call_arguments.delta", payload);
                }
            }
            StreamEvent::Finish { reason } => self.finish = Some(*reason),
            StreamEvent::Usage(usage) => self.usage.merge(usage),
            StreamEvent::Error {
                error_type,
                message,
            } => {
                self.start(out);
                self.close_text(out);
                self.close_calls(out);
                self.emit(
                    out,
                    "error",
                    json!({"code": error_type, "message": message, "param": null}),
                );
                let mut response = self.response(ResponseStatus::Failed, None);
                response["error"] = json!({"code": error_type, "message": message});
                self.emit(out, "response.failed", json!({"response": response}));
                self.ended = true;
            }
            StreamEvent::Done => {
                self.start(out);
                self.close_text(out);
                self.close_calls(out);
                let finish = self.finish.map(|f| match f {
                    FinishReason::Length => ir::FinishReason::Length,
                    FinishReason::ContentFilter => ir::FinishReason::ContentFilter,
                    _ => ir::FinishReason::Stop,
                });
                let (status, reason) = ResponseStatus::of(finish.as_ref());
                let name = if status == ResponseStatus::Incomplete {
                    "response.incomplete"
                } else {
                    "response.completed"
                };
                let response = self.response(status, reason);
                self.emit(out, name, json!({"response": response}));
                self.ended = true;
            }
        }
    }

    fn bare_id(&self) -> &str {
        self.id.strip_prefix("resp_").unwrap_or(&self.id)
    }

    /// `response.created` and `response.in_progress`, once.
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        if self.id.is_empty() {
            self.id = response_id("tollgate");
        }
        let response = self.response(ResponseStatus::InProgress, None);
        self.emit(out, "response.created", json!({"response": response}));
        let response = self.response(ResponseStatus::InProgress, None);
        self.emit(out, "response.in_progress", json!({"response": response}));
    }

    fn next_index(&mut self) -> usize {
        self.items += 1;
        self.items - 1
    }

    /// Ends the open message item with its `.done` events and files it for the final object.
    fn close_text(&mut self, out: &mut Vec<u8>) {
        let Some(OpenText {
            output_index,
            item_id,
            text,
        }) = self.text.take()
        else {
            return;
        };
        self.emit(
            out,
            "response.output_text.done",
            json!({"item_id": item_id, "output_index": output_index,
                   "content_index": 0, "text": text, "logprobs": []}),
        );
        self.emit(
            out,
            "response.content_part.done",
            json!({"item_id": item_id, "output_index": output_index,
                   "content_index": 0, "part": output_text(&text)}),
        );
        let item = message_item(
            &item_id,
            ResponseStatus::Completed,
            vec![output_text(&text)],
        );
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        );
        self.done_items.push((output_index, item));
    }

    /// Ends every open function-call item, in the order they were opened.
    fn close_calls(&mut self, out: &mut Vec<u8>) {
        for call in std::mem::take(&mut self.calls) {
            if call.custom {
                self.close_custom_call(out, call);
                continue;
            }
            self.emit(
                out,
                "response.function_call_arguments.done",
                json!({"item_id": call.item_id, "output_index": call.output_index,
                       "name": call.name, "arguments": call.arguments}),
            );
            let item = function_call_item(
                &call.item_id,
                &call.call_id,
                &call.name,
                &call.arguments,
                "completed",
            );
            self.emit(
                out,
                "response.output_item.done",
                json!({"output_index": call.output_index, "item": item}),
            );
            self.done_items.push((call.output_index, item));
        }
    }

    /// Ends a custom tool call: its whole input as one delta, then the `.done` events.
    fn close_custom_call(&mut self, out: &mut Vec<u8>, call: OpenCall) {
        let input = custom_input(&call.arguments);
        if !input.is_empty() {
            self.emit(
                out,
                "response.custom_tool_call_input.delta",
                json!({"item_id": call.item_id, "output_index": call.output_index,
                       "delta": input}),
            );
        }
        self.emit(
            out,
            "response.custom_tool_call_input.done",
            json!({"item_id": call.item_id, "output_index": call.output_index,
                   "input": input}),
        );
        let item = custom_tool_call_item(&call.item_id, &call.call_id, &call.name, &input);
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": call.output_index, "item": item}),
        );
        self.done_items.push((call.output_index, item));
    }

    fn response(&self, status: ResponseStatus, reason: Option<&str>) -> Value {
        let usage = (self.usage != Usage::default()).then(|| ir::Usage {
            input_tokens: self.usage.input.unwrap_or(0),
            output_tokens: self.usage.output.unwrap_or(0),
            cached_input_tokens: self.usage.cached_input.unwrap_or(0),
            cache_creation_input_tokens: self.usage.cache_creation.unwrap_or(0),
        });
        let output = if status == ResponseStatus::InProgress {
            Vec::new()
        } else {
            let mut done = self.done_items.clone();
            done.sort_by_key(|(index, _)| *index);
            done.into_iter().map(|(_, item)| item).collect()
        };
        let mut response = envelope(
            &self.id,
            &self.model,
            self.created_at,
            (status, reason),
            output,
            None,
        );
        if let Some(u) = usage {
            response["usage"] = usage_json(&u);
        }
        response
    }

    /// One SSE event: `event: <type>` and the payload with its `type` and sequence number.
    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, mut payload: Value) {
        if let Value::Object(map) = &mut payload {
            map.insert("type".into(), kind.into());
            map.insert("sequence_number".into(), self.sequence.into());
        }
        self.sequence += 1;
        write_sse_json(out, Some(kind), &payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The (type, payload) of every event written.
    fn events(out: &[u8]) -> Vec<(String, Value)> {
        String::from_utf8_lossy(out)
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .map(|v| (v["type"].as_str().unwrap().to_string(), v))
            .collect()
    }

    #[test]
    fn a_custom_tool_call_streams_its_input() {
        let mut encoder = ResponsesEncoder::new(7);
        encoder.set_custom_tools(vec!["apply_patch".into()]);
        let mut out = Vec::new();
        for event in [
            StreamEvent::Start {
                id: "c1".into(),
                model: "m".into(),
            },
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_1".into(),
                name: "apply_patch".into(),
            },
            StreamEvent::ToolArgumentsDelta {
                index: 0,
                json_fragment: r#"{"input":"*** Begin"#.into(),
            },
            StreamEvent::ToolArgumentsDelta {
                index: 0,
                json_fragment: r#" Patch\n"}"#.into(),
            },
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
            },
            StreamEvent::Done,
        ] {
            encoder.encode(&event, &mut out);
        }
        let events = events(&out);
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.custom_tool_call_input.delta",
                "response.custom_tool_call_input.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let item = json!({"type": "custom_tool_call", "id": "ctc_c1_0", "call_id": "call_1",
                          "name": "apply_patch", "input": "*** Begin Patch\n"});
        let mut added = item.clone();
        added["input"] = "".into();
        assert_eq!(events[2].1["item"], added);
        assert_eq!(events[2].1["output_index"], 0);
        let delta = &events[3].1;
        assert_eq!(
            (&delta["item_id"], &delta["output_index"], &delta["delta"]),
            (&json!("ctc_c1_0"), &json!(0), &json!("*** Begin Patch\n"))
        );
        let done = &events[4].1;
        assert_eq!(
            (&done["item_id"], &done["output_index"], &done["input"]),
            (&json!("ctc_c1_0"), &json!(0), &json!("*** Begin Patch\n"))
        );
        assert_eq!(events[5].1["item"], item);
        assert_eq!(events[6].1["response"]["output"], json!([item]));
    }
}
