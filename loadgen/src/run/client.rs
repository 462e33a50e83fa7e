//! A bounded pool of keep-alive HTTP/1.1 connections to one endpoint, and one timed request.
//!
//! hyper-util's pooled client opens a new connection whenever all are busy, so under open-loop load
//! the connection count would grow without limit; this pool caps it at `--connections` and makes
//! requests wait for a free connection instead (that wait counts in their latency).

use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use http::header::HOST;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::workload::{Endpoint, Variant};

type Conn = SendRequest<Full<Bytes>>;

pub struct Pool {
    endpoint: Endpoint,
    idle: Mutex<Vec<Conn>>,
    slots: Semaphore,
}

/// How one request ended.
pub enum Outcome {
    /// A full response was read: when its first body byte (if any) and its end arrived.
    Response {
        status: u16,
        first_byte: Option<Instant>,
        done: Instant,
    },
    Failed(String),
}

impl Pool {
    pub fn new(endpoint: Endpoint, connections: usize) -> Self {
        Pool {
            endpoint,
            idle: Mutex::new(Vec::with_capacity(connections)),
            slots: Semaphore::new(connections),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn connect(&self) -> anyhow::Result<Conn> {
        let addr = self.endpoint.addr;
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        let _ = tcp.set_nodelay(true);
        let (send, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(async move {
            // Ends when the server closes or the SendRequest is dropped; errors surface on send.
            let _ = conn.await;
        });
        Ok(send)
    }

    /// Opens `n` connections up front so the first requests of the run don't pay for the TCP
    /// handshake, and so an unreachable endpoint is reported before the run starts.
    pub async fn warm(&self, n: usize) -> anyhow::Result<()> {
        for _ in 0..n {
            let conn = self.connect().await?;
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
        Ok(())
    }

    fn pop_idle(&self) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// A connection ready to send: a live idle one if any, else a new one.
    async fn checkout(&self) -> anyhow::Result<Conn> {
        while let Some(mut conn) = self.pop_idle() {
            if conn.ready().await.is_ok() {
                return Ok(conn);
            }
            // The server closed it while idle: drop it and try the next one.
        }
        self.connect().await
    }

    fn checkin(&self, conn: Conn) {
        if !conn.is_closed() {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
    }

    /// Sends one request and reads the whole response body.
    pub async fn send(&self, variant: &Variant, method: &http::Method) -> Outcome {
        match self.try_send(variant, method).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed(format!("{e:#}")),
        }
    }

    async fn try_send(&self, variant: &Variant, method: &http::Method) -> anyhow::Result<Outcome> {
        let _slot = self.slots.acquire().await.context("pool closed")?;
        let mut conn = self.checkout().await?;
        let mut request = Request::new(Full::new(variant.body.clone()));
        *request.method_mut() = method.clone();
        *request.uri_mut() = self.endpoint.path.clone();
        *request.headers_mut() = variant.headers.clone();
        request
            .headers_mut()
            .insert(HOST, self.endpoint.host.clone());

        let response = conn.send_request(request).await.context("send")?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut first_byte = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading body")?;
            if first_byte.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
                first_byte = Some(Instant::now());
            }
        }
        let done = Instant::now();
        self.checkin(conn);
        Ok(Outcome::Response {
            status,
            first_byte,
            done,
        })
    }
}
