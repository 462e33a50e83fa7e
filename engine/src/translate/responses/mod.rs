//! The OpenAI Responses API (`POST /v1/responses`, what Codex CLI speaks) as a client format:
//! requests are read into the IR (`request`), answers rendered from it (`response`); the
//! stream encoder is `stream::responses`. Providers are never sent this format.

mod request;
mod response;

pub use request::{custom_tool_names, request_from_responses};
pub(crate) use response::{
    custom_input, custom_tool_call_item, envelope, function_call_item, message_item, output_text,
    usage_json,
};
pub use response::{response_id, response_to_responses, ResponseStatus};
