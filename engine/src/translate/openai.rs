//! OpenAI Chat Completions ⇄ IR, for requests (`request`) and whole responses (`response`).
//!
//! Lossy points, on purpose: `name` on messages and OpenAI-only response fields (`logprobs`,
//! `system_fingerprint`, choices after the first) are dropped; `developer` messages become
//! system text; system messages in the middle of a conversation join the system prompt (the
//! only place Anthropic has for them). The IR renders to `max_completion_tokens`, the field
//! current OpenAI models require (reasoning models reject `max_tokens`).

mod request;
mod response;

pub(crate) use request::parse_image_url;
pub use request::{request_from_openai, request_to_openai};
pub use response::{response_from_openai, response_to_openai};
