//! Anthropic Messages ⇄ IR, for requests (`request`), whole responses (`response`) and the
//! Anthropic error body (`error`).
//!
//! Lossy points, on purpose: `cache_control` marks and `top_k`/`thinking` (kept as Anthropic-only
//! extras) do not reach OpenAI; `thinking`/`redacted_thinking` blocks are skipped; a tool result's
//! `is_error` has no OpenAI field. Going to Anthropic, whitespace-only text and stop sequences are
//! left out and `top_p` is dropped beside `temperature`, as current Claude models refuse them.
//! Server tools (`web_search_*`, `bash_*`, ...), `document` blocks and `file` image sources are
//! refused with an error naming them, rather than silently changing what the model sees.

mod error;
mod request;
mod response;

pub use error::{api_error_body, error_body, error_type_for, error_type_for_status};
pub use request::{request_from_anthropic, request_to_anthropic};
pub use response::{response_from_anthropic, response_to_anthropic};
