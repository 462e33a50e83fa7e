//! Building responses: JSON bodies, errors in the OpenAI shape, gateway headers.

use super::body::ProxyBody;
use crate::error::ApiError;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

pub type ProxyResponse = Response<ProxyBody>;

pub const REQUEST_ID: &str = "x-tollgate-request-id";

pub fn json(status: StatusCode, body: impl Into<Bytes>) -> ProxyResponse {
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> ProxyResponse {
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub fn error(err: &ApiError, request_id: Option<&HeaderValue>) -> ProxyResponse {
    let mut resp = json(err.status(), err.openai_body());
    if let Some(id) = request_id {
        resp.headers_mut().insert(REQUEST_ID, id.clone());
    }
    if let Some(secs) = err.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// A fresh request id: 128 random bits as hex. Not a secret, only unique.
pub fn new_request_id() -> HeaderValue {
    let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}
