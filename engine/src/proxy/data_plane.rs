//! The data-plane router: which handler serves which path (SPEC §2).

use super::client_format::ClientFormat;
use super::forward;
use super::genai;
use super::messages;
use super::respond::{self, ProxyResponse};
use super::Gateway;
use crate::admission::auth;
use crate::error::{ApiError, ErrorType};
use crate::telemetry::Endpoint;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

pub async fn route(gw: &Gateway, req: Request<Incoming>) -> ProxyResponse {
    // `/openai/v1/...` is an alias of `/v1/...` for clients configured with that base URL.
    let path = req.uri().path();
    let path = path
        .strip_prefix("/openai")
        .filter(|p| p.starts_with("/v1/"))
        .unwrap_or(path);
    match (req.method(), path) {
        (&Method::POST, "/v1/chat/completions") => forward::handle(gw, Endpoint::Chat, req).await,
        (&Method::POST, "/v1/embeddings") => forward::handle(gw, Endpoint::Embeddings, req).await,
        (&Method::GET, "/v1/models") => list_models(gw, &req),
        (&Method::POST, "/v1/responses") => {
            forward::handle_as(gw, Endpoint::Chat, ClientFormat::Responses, req).await
        }
        (&Method::POST, "/anthropic/v1/messages") => {
            forward::handle_as(gw, Endpoint::Chat, ClientFormat::Anthropic, req).await
        }
        (&Method::POST, "/anthropic/v1/messages/count_tokens") => {
            messages::count_tokens(gw, req).await
        }
        (_, "/anthropic/v1/messages" | "/anthropic/v1/messages/count_tokens") => {
            ClientFormat::Anthropic.error(
                &ApiError::new(
                    ErrorType::MethodNotAllowed,
                    format!("method {} is not allowed on {path}", req.method()),
                ),
                None,
            )
        }
        (&Method::POST, p) if p.starts_with("/genai/") => {
            let endpoint = genai::endpoint(p);
            forward::handle_as(gw, endpoint, ClientFormat::Gemini, req).await
        }
        (_, p) if p.starts_with("/genai/") => ClientFormat::Gemini.error(
            &ApiError::new(
                ErrorType::MethodNotAllowed,
                format!("method {} is not allowed on {path}", req.method()),
            ),
            None,
        ),
        (_, "/mcp") => crate::mcp::endpoint::handle(gw, req).await,
        (&Method::GET, "/healthz") => respond::json(StatusCode::OK, r#"{"status":"ok"}"#),
        // The plan is loaded before the listener opens and never unloaded; stores join later.
        (&Method::GET, "/readyz") => super::ready::readyz(gw).await,
        (
            _,
            "/v1/chat/completions"
            | "/v1/embeddings"
            | "/v1/responses"
            | "/v1/models"
            | "/healthz"
            | "/readyz",
        ) => respond::error(
            &ApiError::new(
                ErrorType::MethodNotAllowed,
                format!("method {} is not allowed on {path}", req.method()),
            ),
            None,
        ),
        _ => respond::error(
            &ApiError::new(ErrorType::NotFound, format!("no endpoint at {path}")),
            None,
        ),
    }
}

fn list_models(gw: &Gateway, req: &Request<Incoming>) -> ProxyResponse {
    let plan = gw.plan.load();
    match auth::authenticate(&plan, req.headers(), chrono::Utc::now().timestamp()) {
        Ok(key) => respond::json(StatusCode::OK, key.models_list.clone()),
        Err(e) => respond::error(&e, None),
    }
}
