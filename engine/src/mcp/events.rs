//! `GET /mcp`: the stream on which a client hears from the server unprompted. The gateway
//! sends `notifications/tools/list_changed` when any upstream catalogue changes, and a
//! comment every 15 s so idle proxies keep the connection open.

use super::endpoint::reply_error;
use crate::admission::auth;
use crate::proxy::{respond, Gateway, ProxyBody, ProxyResponse};
use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

const KEEP_ALIVE: Duration = Duration::from_secs(15);
const LIST_CHANGED: &str =
    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";

pub fn open(gw: &Gateway, req: &Request<Incoming>) -> ProxyResponse {
    let plan = gw.plan.load();
    if let Err(e) = auth::authenticate(&plan, req.headers(), chrono::Utc::now().timestamp()) {
        return reply_error(&e.into(), None);
    }
    let accepts = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !accepts {
        return respond::json(
            StatusCode::NOT_ACCEPTABLE,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"GET /mcp needs `Accept: text/event-stream`"}}"#,
        );
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let version = gw.mcp.version.clone();
    tokio::spawn(async move {
        let mut seen = version.load(Relaxed);
        // An opening comment gets the headers and first bytes through buffering proxies.
        if tx
            .send(Bytes::from_static(b": connected\n\n"))
            .await
            .is_err()
        {
            return;
        }
        let mut idle = Duration::ZERO;
        let tick = Duration::from_millis(500);
        loop {
            tokio::time::sleep(tick).await;
            idle += tick;
            let now = version.load(Relaxed);
            let event = if now != seen {
                seen = now;
                idle = Duration::ZERO;
                Some(Bytes::from_static(LIST_CHANGED.as_bytes()))
            } else if idle >= KEEP_ALIVE {
                idle = Duration::ZERO;
                Some(Bytes::from_static(b": keep-alive\n\n"))
            } else {
                None
            };
            // A closed receiver means the client went away.
            if let Some(e) = event {
                if tx.send(e).await.is_err() {
                    return;
                }
            } else if tx.is_closed() {
                return;
            }
        }
    });
    let mut resp = ProxyResponse::new(ProxyBody::Events(rx));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
