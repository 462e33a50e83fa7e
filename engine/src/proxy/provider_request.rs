//! What one provider is sent for one routed request: the body in the provider's wire format,
//! and the HTTP request built per attempt (the key may change between attempts, and a Bedrock
//! signature covers the time it is made, so nothing key-dependent is built once).

use super::request::RequestHead;
use super::translated;
use crate::aws::sigv4::{self, SignableRequest, SigningParams};
use crate::error::{ApiError, ErrorType};
use crate::plan::{ProviderKeyPlan, ProviderPlan, ProviderWire};
use crate::telemetry::Endpoint;
use crate::translate::stream::WireFormat;
use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Uri};
use http_body_util::Full;

/// Client headers passed upstream; everything else (the caller's credentials above all) stays here.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 3] = [
    header::ACCEPT,
    HeaderName::from_static("openai-beta"),
    HeaderName::from_static("anthropic-beta"),
];

/// The wire format a provider of another format than OpenAI answers in.
pub fn foreign_format(wire: ProviderWire) -> WireFormat {
    match wire {
        ProviderWire::OpenAi => WireFormat::OpenAi,
        ProviderWire::Anthropic { .. } => WireFormat::Anthropic,
        ProviderWire::Gemini => WireFormat::Gemini,
        ProviderWire::Bedrock => WireFormat::Bedrock,
    }
}

/// The body for `provider`, from the client's (OpenAI) request after the proxy's edits. A
/// request the provider's format cannot take is the client's error (400), found before
/// anything is sent, so it is final (no fallback).
pub fn body_for(
    provider: &ProviderPlan,
    endpoint: Endpoint,
    head: &RequestHead<'_>,
    body: &Bytes,
    model: &str,
    redacted_messages: Option<&str>,
) -> Result<Bytes, ApiError> {
    if provider.wire == ProviderWire::OpenAi {
        return Ok(head.upstream_body(body, model, redacted_messages));
    }
    if matches!(endpoint, Endpoint::Embeddings) {
        return match provider.wire {
            ProviderWire::Gemini => translated::gemini_embeddings_request(body, model),
            ProviderWire::Bedrock => translated::bedrock_embeddings_request(body, model),
            _ => Err(no_embeddings(provider)),
        };
    }
    let format = foreign_format(provider.wire);
    let default_max_tokens = match provider.wire {
        ProviderWire::Anthropic { default_max_tokens } => default_max_tokens,
        _ => 0,
    };
    translated::provider_request(format, body, model, redacted_messages, default_max_tokens)
}

/// The refusal of `/v1/embeddings` routed to a provider whose API has no embeddings
/// (Anthropic).
fn no_embeddings(provider: &ProviderPlan) -> ApiError {
    ApiError::new(
        ErrorType::InvalidRequest,
        format!(
            "provider `{}` is of kind {}, which has no embeddings API; embeddings reach \
             providers of kind openai, openai_compatible, azure, gemini and bedrock",
            provider.name, provider.pricing_name
        ),
    )
}

/// Everything of an upstream request that does not depend on the key.
pub struct UpstreamRequest<'a> {
    pub provider: &'a ProviderPlan,
    pub uri: Uri,
    pub body: Bytes,
    pub client_headers: &'a HeaderMap,
    pub traceparent: Option<HeaderValue>,
}

impl UpstreamRequest<'_> {
    /// The request for one attempt with `key` (none: the provider takes no key).
    pub fn build(&self, key: Option<&ProviderKeyPlan>) -> Option<Request<Full<Bytes>>> {
        let provider = self.provider;
        let mut req = Request::post(self.uri.clone())
            .body(Full::new(self.body.clone()))
            .ok()?;
        let headers = req.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for name in &FORWARDED_REQUEST_HEADERS {
            // A beta header means something only to a provider of its API's format (Claude
            // Code turns on features such as interleaved thinking with `anthropic-beta`).
            let passes = match name.as_str() {
                "openai-beta" => provider.wire == ProviderWire::OpenAi,
                "anthropic-beta" => matches!(provider.wire, ProviderWire::Anthropic { .. }),
                _ => true,
            };
            if !passes {
                continue;
            }
            if let Some(v) = self.client_headers.get(name) {
                headers.insert(name.clone(), v.clone());
            }
        }
        for (name, value) in &provider.fixed_headers {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(t) = &self.traceparent {
            headers.insert(HeaderName::from_static("traceparent"), t.clone());
        }
        match key {
            Some(k) if k.aws.is_some() => self.sign(&mut req, k)?,
            Some(k) => {
                req.headers_mut()
                    .insert(provider.auth_header.clone(), k.authorization.clone());
            }
            None => {}
        }
        Some(req)
    }

    /// Adds a SigV4 signature over the method, path, host, content type and body, made now.
    fn sign(&self, req: &mut Request<Full<Bytes>>, key: &ProviderKeyPlan) -> Option<()> {
        let (aws, region) = (key.aws.as_ref()?, self.provider.aws_region.as_deref()?);
        let host = self.uri.authority()?.as_str();
        let signed = sigv4::sign(
            &SignableRequest {
                method: "POST",
                path: self.uri.path(),
                query: self.uri.query().unwrap_or(""),
                headers: &[("host", host), ("content-type", "application/json")],
                payload: &self.body,
            },
            &SigningParams {
                region,
                service: sigv4::BEDROCK_SERVICE,
                credentials: aws.borrowed(),
                time: chrono::Utc::now(),
                sign_content_sha256: false,
            },
        );
        let headers = req.headers_mut();
        // The client sends exactly the host that was signed.
        headers.insert(header::HOST, HeaderValue::from_str(host).ok()?);
        for (name, value) in signed.pairs(false) {
            let mut value = HeaderValue::from_str(value).ok()?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Some(())
    }
}
