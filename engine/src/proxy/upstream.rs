//! The pooled upstream HTTP clients (keep-alive, HTTP and HTTPS), and one attempt's wait for
//! the response headers.
//!
//! A connect timeout belongs to a connector, so there is one client per distinct
//! `connect_timeout`: each provider's plan carries the client for its own, chosen when the
//! gateway takes a plan in. The clients (and their connection pools) outlive plans, so a
//! reload keeps its warm connections.

use crate::plan::{Plan, ProviderPlan, ProviderTimeouts};
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

/// For calls that are not a provider's (guardrail webhooks, which have their own timeout), and
/// for a plan no gateway took in (a served plan always has its own clients).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for MCP servers over HTTP+SSE (one per process; its pool outlives plans).
pub(crate) fn mcp_client() -> UpstreamClient {
    static CLIENT: std::sync::OnceLock<UpstreamClient> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| build_client(DEFAULT_CONNECT_TIMEOUT))
        .clone()
}

fn build_client(connect_timeout: Duration) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.set_connect_timeout(Some(connect_timeout));
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

/// Every client the gateway made, by connect timeout. Only touched when a plan is taken in;
/// requests use the client their provider's plan carries.
pub struct Upstreams {
    by_connect_timeout: papaya::HashMap<Duration, UpstreamClient>,
    default: UpstreamClient,
}

impl Upstreams {
    pub fn new() -> Upstreams {
        Upstreams {
            by_connect_timeout: papaya::HashMap::new(),
            default: build_client(DEFAULT_CONNECT_TIMEOUT),
        }
    }

    /// Gives each provider of `plan` the client for its connect timeout, making one the first
    /// time a timeout is seen.
    pub fn attach(&self, plan: &mut Plan) {
        let clients = self.by_connect_timeout.pin();
        for p in &mut plan.providers {
            let t = p.timeouts.connect;
            p.client = Some(clients.get_or_insert_with(t, || build_client(t)).clone());
        }
    }

    /// The client `provider`'s calls go through.
    pub fn client<'a>(&'a self, provider: &'a ProviderPlan) -> &'a UpstreamClient {
        provider.client.as_ref().unwrap_or(&self.default)
    }

    /// The client for calls that belong to no provider.
    pub fn default_client(&self) -> &UpstreamClient {
        &self.default
    }
}

/// Which bound an attempt ran into before the response headers arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimedOut {
    /// `connect_timeout`: no TCP connection.
    Connect,
    /// `first_byte_timeout`, when it is shorter than `timeout`: connected (or not), but no
    /// response headers.
    FirstByte,
    /// `timeout`, the whole attempt.
    Total,
}

impl TimedOut {
    /// The `error` of the attempt in a 502/504 body.
    pub fn as_str(self) -> &'static str {
        match self {
            TimedOut::Connect => "connect timeout",
            TimedOut::FirstByte => "first byte timeout",
            TimedOut::Total => "timeout",
        }
    }

    /// The message of the 504 when this was the last attempt.
    pub fn message(self, provider: &str, t: &ProviderTimeouts) -> String {
        match self {
            TimedOut::Connect => format!(
                "could not connect to provider `{provider}` within {} ms (connect_timeout)",
                t.connect.as_millis()
            ),
            TimedOut::FirstByte => format!(
                "provider `{provider}` sent no response headers within {} ms (first_byte_timeout)",
                t.first_byte.as_millis()
            ),
            TimedOut::Total => format!(
                "provider `{provider}` did not answer within {} ms (timeout)",
                t.total.as_millis()
            ),
        }
    }
}

/// Why an upstream attempt produced no response.
#[derive(Debug)]
pub enum SendError {
    TimedOut(TimedOut),
    Failed(String),
}

/// Sends one request and waits for its response headers, within `first_byte_timeout` (which
/// includes connecting, itself bounded by the client's connect timeout).
pub async fn send(
    client: &UpstreamClient,
    req: Request<Full<Bytes>>,
    timeouts: &ProviderTimeouts,
) -> Result<http::Response<Incoming>, SendError> {
    // When both are equal it is the whole attempt's bound that ran out: say `timeout`, the
    // setting the user wrote.
    let on_expiry = if timeouts.first_byte < timeouts.total {
        TimedOut::FirstByte
    } else {
        TimedOut::Total
    };
    match tokio::time::timeout(timeouts.first_byte, client.request(req)).await {
        Err(_) => Err(SendError::TimedOut(on_expiry)),
        Ok(Err(e)) if e.is_connect() && is_timeout(&e) => {
            Err(SendError::TimedOut(TimedOut::Connect))
        }
        Ok(Err(e)) => Err(SendError::Failed(describe(&e))),
        Ok(Ok(resp)) => Ok(resp),
    }
}

/// Whether an error was caused by a timed-out I/O operation (the connector's connect timeout
/// reports one as `io::ErrorKind::TimedOut`, as does the kernel giving up on a SYN).
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = s.source();
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts(first_byte_ms: u64, total_ms: u64) -> ProviderTimeouts {
        ProviderTimeouts {
            connect: Duration::from_millis(first_byte_ms),
            first_byte: Duration::from_millis(first_byte_ms),
            total: Duration::from_millis(total_ms),
            stream_idle: Duration::from_secs(60),
        }
    }

    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("tcp connect error")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_timed_out_io_error_anywhere_in_the_chain_is_a_timeout() {
        let timed_out = Wrapper(std::io::Error::new(std::io::ErrorKind::TimedOut, "elapsed"));
        assert!(is_timeout(&timed_out));
        let refused = Wrapper(std::io::ErrorKind::ConnectionRefused.into());
        assert!(!is_timeout(&refused));
        assert_eq!(describe(&refused), "tcp connect error: connection refused");
    }

    #[test]
    fn timeouts_are_named_after_the_setting_that_ran_out() {
        let t = timeouts(300, 1000);
        assert_eq!(TimedOut::Connect.as_str(), "connect timeout");
        assert!(TimedOut::FirstByte
            .message("p", &t)
            .contains("within 300 ms (first_byte_timeout)"));
        assert!(TimedOut::Total
            .message("p", &t)
            .contains("within 1000 ms (timeout)"));
    }

    #[tokio::test]
    async fn a_closed_port_fails_at_once_and_a_silent_one_times_out() {
        let upstreams = Upstreams::new();
        // A port nobody listens on: refused, not timed out.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/v1/chat/completions",
            closed.local_addr().unwrap()
        );
        drop(closed);
        let req = || Request::post(&url).body(Full::new(Bytes::new())).unwrap();
        let client = upstreams.default_client();
        match send(client, req(), &timeouts(2000, 5000)).await {
            Err(SendError::Failed(msg)) => assert!(msg.contains("onnect"), "{msg}"),
            other => panic!("expected a connection failure, got {other:?}"),
        }
        // A listener that accepts and never answers: the first-byte bound, or the total when
        // they are equal.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url2 = format!(
            "http://{}/v1/chat/completions",
            silent.local_addr().unwrap()
        );
        let req2 = || Request::post(&url2).body(Full::new(Bytes::new())).unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                open.push(s);
            }
        });
        match send(client, req2(), &timeouts(50, 1000)).await {
            Err(SendError::TimedOut(TimedOut::FirstByte)) => {}
            other => panic!("expected a first byte timeout, got {other:?}"),
        }
        match send(client, req2(), &timeouts(50, 50)).await {
            Err(SendError::TimedOut(TimedOut::Total)) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        held.abort();
    }

    #[tokio::test]
    async fn a_connect_that_gets_no_answer_is_a_connect_timeout() {
        // A listener with a backlog of 0 whose one queue slot is taken and never accepted:
        // the kernel drops further SYNs, so a connect hangs as with a blackholed address.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let _slot = std::net::TcpStream::connect(addr).unwrap();
        let client = build_client(Duration::from_millis(100));
        let req = Request::post(format!("http://{addr}/v1/chat/completions"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let started = std::time::Instant::now();
        match send(&client, req, &timeouts(5000, 5000)).await {
            Err(SendError::TimedOut(TimedOut::Connect)) => {}
            other => panic!("expected a connect timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(4));
        drop(listener);
    }
}
