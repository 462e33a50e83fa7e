//! Translation between the chat wire formats (OpenAI Chat Completions, Anthropic Messages)
//! through one internal representation, so any client format can reach any provider format.
//! Requests and whole responses: `ir`, `openai`, `anthropic`. Streams: `stream`.

pub mod anthropic;
pub mod bedrock;
pub mod embeddings;
pub mod gemini;
pub mod ir;
mod json_access;
pub mod openai;
pub mod responses;
pub mod stream;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod unit_tests;
