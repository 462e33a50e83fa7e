//! Google Gemini `generateContent` ⇄ IR: requests (`request`), whole answers (`response`) and
//! Google's error shape (`error`). The stream codec is `stream::gemini`. OpenAI embeddings
//! requests and answers to and from `batchEmbedContents` are `embeddings`; Gemini clients'
//! `embedContent` and `batchEmbedContents` to and from OpenAI embeddings, `embeddings_client`.
//!
//! Dropped on the way: Gemini-only generation settings (`topK`, `responseMimeType`,
//! `thinkingConfig`, `safetySettings`, `cachedContent`), thought parts, and built-in tools,
//! which are refused. Images must be inline (base64) to reach Gemini.

mod embeddings;
mod embeddings_client;
mod error;
mod request;
mod response;

pub use embeddings::{embeddings_request_to_gemini, embeddings_response_to_openai};
pub use embeddings_client::{embed_request_to_openai, embeddings_answer_to_gemini, EmbedMethod};
pub use error::{error_body, error_message, status_name};
pub use request::{request_from_gemini, request_to_gemini};
pub(crate) use response::{finish_reason, finish_reason_to_gemini, usage_to_gemini};
pub use response::{response_from_gemini, response_to_gemini};
