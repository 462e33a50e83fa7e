//! The pooled upstream HTTP client (keep-alive, HTTP and HTTPS) shared by all providers.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

pub fn build_client() -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        // The ring provider supports the default protocol versions; failure here is a build bug.
        .expect("ring crypto provider supports default TLS versions")
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(https)
}

/// Why an upstream attempt produced no response.
#[derive(Debug)]
pub enum SendError {
    Timeout,
    Failed(String),
}

/// Sends one request, bounded by `timeout` until the response headers arrive.
pub async fn send(
    client: &UpstreamClient,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<http::Response<Incoming>, SendError> {
    match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => Err(SendError::Timeout),
        Ok(Err(e)) => Err(SendError::Failed(describe(&e))),
        Ok(Ok(resp)) => Ok(resp),
    }
}

/// The error chain in one line ("client error (Connect): tcp connect error: Connection refused").
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
