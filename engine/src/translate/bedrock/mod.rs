//! AWS Bedrock Converse API, mainly the provider side: IR requests → Converse bodies and
//! Converse responses → IR, plus the reverse directions (`request`, `response`), and Bedrock's
//! error answers (`error`). Streams are in
//! `stream::bedrock`, over the binary framing of `stream::eventstream`; request signing is in
//! `crate::aws::sigv4`.
//!
//! The model id is not part of the body: it goes in the URL ([`converse_path`]).
//!
//! Embedding models are not served by Converse but by InvokeModel ([`invoke_path`]), with a
//! body per model family (`embeddings`).
//!
//! Lossy points, on purpose: Converse has no "no tool" choice, so `tool_choice: none` sends the
//! tools without a choice (the model may still call one); `parallel_tool_calls`, `user` and
//! OpenAI- or Anthropic-only extras have no Converse field and are not sent; image URLs are
//! refused (Converse takes image bytes only); reasoning blocks in a response are skipped.
//! Converse responses carry no id and no model name (the request id is an HTTP header), so the
//! IR response has both empty for the caller to fill in.

mod embeddings;
mod error;
mod request;
mod response;

pub use embeddings::{embeddings_request_to_bedrock, embeddings_response_to_openai};

pub use error::{error_message, exception_name};
pub use request::{request_from_bedrock, request_to_bedrock};
pub use response::{response_from_bedrock, response_to_bedrock};

/// The path of a Converse call for a model id: `/model/{id}/converse`, or `/converse-stream`
/// for a streamed answer. The id is percent-encoded once here (ids such as
/// `anthropic.claude-3-5-sonnet-20240620-v1:0` hold a `:`, and inference-profile ARNs hold `/`);
/// SigV4 encodes the path a second time for its canonical request, see `crate::aws::sigv4`.
pub fn converse_path(model_id: &str, stream: bool) -> String {
    model_path(
        model_id,
        if stream {
            "/converse-stream"
        } else {
            "/converse"
        },
    )
}

/// The path of an InvokeModel call (embeddings): `/model/{id}/invoke`, the id encoded as in
/// [`converse_path`].
pub fn invoke_path(model_id: &str) -> String {
    model_path(model_id, "/invoke")
}

fn model_path(model_id: &str, action: &str) -> String {
    let mut path = String::from("/model/");
    crate::aws::sigv4::uri_encode_into(&mut path, model_id, true);
    path.push_str(action);
    path
}

#[cfg(test)]
mod tests;
