//! What each request looks like: endpoint, headers and body, prepared once before the run.
//! Keys (and optionally models) rotate round-robin across requests.

use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderMap, Method, Uri};

pub const DEFAULT_BODY: &str =
    r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}"#;

/// Where requests go: a resolved socket address plus what goes on the request line.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: String,
    pub addr: SocketAddr,
    /// Path and query, as sent on the request line.
    pub path: Uri,
    pub host: HeaderValue,
}

impl Endpoint {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid URL `{url}`"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                bail!("unsupported scheme `{other}` in `{url}` (only http:// is supported)")
            }
            None => {
                bail!("URL `{url}` needs a scheme, e.g. http://127.0.0.1:8080/v1/chat/completions")
            }
        }
        let authority = uri
            .authority()
            .with_context(|| format!("URL `{url}` has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve `{}`", authority.host()))?
            .next()
            .with_context(|| format!("`{}` resolves to no address", authority.host()))?;
        let path: Uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .with_context(|| format!("invalid path in `{url}`"))?;
        Ok(Endpoint {
            url: url.to_owned(),
            addr,
            path,
            host: HeaderValue::from_str(authority.as_str())?,
        })
    }
}

/// One prepared request shape (a key and its body).
#[derive(Clone, Debug)]
pub struct Variant {
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub struct Workload {
    pub method: Method,
    pub variants: Vec<Variant>,
}

impl Workload {
    /// Request number `i` uses variant `i mod n`.
    pub fn variant(&self, i: u64) -> &Variant {
        &self.variants[(i % self.variants.len() as u64) as usize]
    }
}

/// A `--keys-file` line: `KEY` or `KEY MODEL`; blank lines and `#` comments are skipped.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyLine {
    pub key: String,
    pub model: Option<String>,
}

pub fn parse_keys(text: &str) -> anyhow::Result<Vec<KeyLine>> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let key = fields.next().unwrap_or_default().to_owned();
        let model = fields.next().map(str::to_owned);
        if fields.next().is_some() {
            bail!("keys file line {}: expected `KEY` or `KEY MODEL`", n + 1);
        }
        keys.push(KeyLine { key, model });
    }
    if keys.is_empty() {
        bail!("keys file has no keys");
    }
    Ok(keys)
}

/// Parses `Name: value` from `--header`.
pub fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("header `{s}` must look like `Name: value`"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("invalid header name in `{s}`"))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("invalid header value in `{s}`"))?;
    Ok((name, value))
}

/// Returns the body with top-level fields changed; the body must then be a JSON object.
fn edit_json(body: &[u8], stream: bool, model: Option<&str>) -> anyhow::Result<Bytes> {
    if !stream && model.is_none() {
        return Ok(Bytes::copy_from_slice(body));
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(body).context("--stream and per-key models need a JSON body")?;
    let object = value
        .as_object_mut()
        .context("--stream and per-key models need the body to be a JSON object")?;
    if stream {
        object.insert("stream".into(), true.into());
    }
    if let Some(model) = model {
        object.insert("model".into(), model.into());
    }
    Ok(Bytes::from(serde_json::to_vec(&value)?))
}

pub struct WorkloadSpec<'a> {
    pub method: Method,
    pub body: &'a [u8],
    pub stream: bool,
    pub keys: Vec<KeyLine>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl WorkloadSpec<'_> {
    /// The Host header is per endpoint, so it is added at send time, not here.
    pub fn build(self) -> anyhow::Result<Workload> {
        let mut base = HeaderMap::new();
        if !self.body.is_empty() {
            base.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        for (name, value) in self.headers {
            if name == HOST {
                bail!("--header cannot set Host; it comes from the URL");
            }
            base.append(name, value);
        }
        let keys = if self.keys.is_empty() {
            vec![None]
        } else {
            self.keys.into_iter().map(Some).collect()
        };
        let mut variants = Vec::with_capacity(keys.len());
        for key in keys {
            let mut headers = base.clone();
            let model = key.as_ref().and_then(|k| k.model.as_deref());
            if let Some(k) = &key {
                let value = HeaderValue::from_str(&format!("Bearer {}", k.key))
                    .with_context(|| format!("key `{}` is not a valid header value", k.key))?;
                headers.insert(AUTHORIZATION, value);
            }
            variants.push(Variant {
                headers,
                body: edit_json(self.body, self.stream, model)?,
            });
        }
        Ok(Workload {
            method: self.method,
            variants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_parsing() {
        let e = Endpoint::parse("http://127.0.0.1:8080/v1/chat/completions?x=1").unwrap();
        assert_eq!(e.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(e.path, "/v1/chat/completions?x=1");
        assert_eq!(e.host, "127.0.0.1:8080");
        let e = Endpoint::parse("http://127.0.0.1").unwrap();
        assert_eq!(e.addr.port(), 80);
        assert_eq!(e.path, "/");
        for bad in ["https://127.0.0.1/", "127.0.0.1:80/x", "http://", "::"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_file_lines() {
        let keys = parse_keys("# comment\nvk-a\n\n  vk-b  gpt-4o \n").unwrap();
        assert_eq!(
            keys,
            [
                KeyLine {
                    key: "vk-a".into(),
                    model: None
                },
                KeyLine {
                    key: "vk-b".into(),
                    model: Some("gpt-4o".into())
                }
            ]
        );
        assert!(parse_keys("a b c").is_err());
        assert!(parse_keys("# only a comment\n").is_err());
    }

    #[test]
    fn headers_from_flags() {
        let (n, v) = parse_header("X-Api-Key:  abc ").unwrap();
        assert_eq!(n, "x-api-key");
        assert_eq!(v, "abc");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    #[test]
    fn variants_rotate_keys_and_models() {
        let spec = WorkloadSpec {
            method: Method::POST,
            body: DEFAULT_BODY.as_bytes(),
            stream: true,
            keys: parse_keys("k1\nk2 claude-x").unwrap(),
            headers: vec![],
        };
        let w = spec.build().unwrap();
        assert_eq!(w.variants.len(), 2);
        assert_eq!(w.variant(0).headers[AUTHORIZATION], "Bearer k1");
        assert_eq!(w.variant(3).headers[AUTHORIZATION], "Bearer k2");
        let b0: serde_json::Value = serde_json::from_slice(&w.variant(0).body).unwrap();
        let b1: serde_json::Value = serde_json::from_slice(&w.variant(1).body).unwrap();
        assert_eq!(b0["stream"], true);
        assert_eq!(b0["model"], "gpt-4o-mini");
        assert_eq!(b1["model"], "claude-x");
    }

    #[test]
    fn non_json_bodies_only_pass_through_unchanged() {
        let spec = |stream| WorkloadSpec {
            method: Method::POST,
            body: b"not json",
            stream,
            keys: vec![],
            headers: vec![],
        };
        assert_eq!(
            &spec(false).build().unwrap().variant(0).body[..],
            b"not json"
        );
        assert!(spec(true).build().is_err());
    }
}
