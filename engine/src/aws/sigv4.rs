//! AWS Signature Version 4 (header form), for calls to `bedrock-runtime`.
//!
//! Pure: the caller passes the clock reading and the credentials, and gets back the headers to
//! add. Follows the published algorithm: a canonical request (method, canonical URI, canonical
//! query, canonical headers, signed header names, payload hash), hashed into a string to sign
//! with the credential scope `date/region/service/aws4_request`, signed with a key derived by an
//! HMAC-SHA256 chain from the secret.
//!
//! The canonical URI is the request path URI-encoded *again*: every service but S3 encodes each
//! path segment of the already-encoded path a second time. A Bedrock model id such as
//! `anthropic.claude-3-5-sonnet-20240620-v1:0` is sent as `...-v1%3A0` and signed as
//! `...-v1%253A0`; signing the once-encoded form is the classic cause of
//! `SignatureDoesNotMatch` with Bedrock. Dot segments are not normalized: Bedrock paths have
//! none.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The signing name of `bedrock-runtime` (it differs from the host's first label).
pub const BEDROCK_SERVICE: &str = "bedrock";

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Long-term or temporary AWS credentials.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    /// Present for temporary credentials (STS, instance roles); sent as `x-amz-security-token`.
    pub session_token: Option<&'a str>,
}

// The secret must not end up in logs through a derived `Debug`.
impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.map(|_| "<redacted>"))
            .finish()
    }
}

/// One request to sign.
#[derive(Debug, Clone, Copy)]
pub struct SignableRequest<'a> {
    pub method: &'a str,
    /// The path exactly as sent on the wire (already percent-encoded once).
    pub path: &'a str,
    /// The query string as sent, without `?`; empty for none.
    pub query: &'a str,
    /// Headers to sign, `host` included. `x-amz-date`, `x-amz-security-token` and
    /// `x-amz-content-sha256` given here are ignored: [`sign`] sets them from its inputs.
    pub headers: &'a [(&'a str, &'a str)],
    pub payload: &'a [u8],
}

/// Where and when the request is signed.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    pub region: &'a str,
    /// The signing name, [`BEDROCK_SERVICE`] for `bedrock-runtime`.
    pub service: &'a str,
    pub credentials: Credentials<'a>,
    pub time: DateTime<Utc>,
    /// Also sign (and send) `x-amz-content-sha256`. Optional for every service but S3; the
    /// published test vectors are computed without it.
    pub sign_content_sha256: bool,
}

/// The headers to add to the request. All of them must be sent as given, beside the headers
/// that were signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub authorization: String,
    pub x_amz_date: String,
    /// Hex SHA-256 of the payload. Sent when [`SigningParams::sign_content_sha256`] is set.
    pub x_amz_content_sha256: String,
    pub x_amz_security_token: Option<String>,
}

impl SignedHeaders {
    /// The headers as (name, value) pairs, ready to insert into a request.
    pub fn pairs(&self, with_content_sha256: bool) -> Vec<(&'static str, &str)> {
        let mut pairs = vec![
            ("authorization", self.authorization.as_str()),
            ("x-amz-date", self.x_amz_date.as_str()),
        ];
        if with_content_sha256 {
            pairs.push(("x-amz-content-sha256", self.x_amz_content_sha256.as_str()));
        }
        if let Some(token) = &self.x_amz_security_token {
            pairs.push(("x-amz-security-token", token.as_str()));
        }
        pairs
    }
}

/// Signs a request: the `Authorization` header and its companions.
pub fn sign(request: &SignableRequest, params: &SigningParams) -> SignedHeaders {
    let amz_date = params.time.format("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let payload_hash = hex::encode(Sha256::digest(request.payload));

    let mut headers = canonical_header_map(request.headers);
    headers.insert("x-amz-date".to_owned(), amz_date.clone());
    if params.sign_content_sha256 {
        headers.insert("x-amz-content-sha256".to_owned(), payload_hash.clone());
    }
    if let Some(token) = params.credentials.session_token {
        headers.insert("x-amz-security-token".to_owned(), token.to_owned());
    }
    let (canonical, signed_names) = canonical_request(request, &headers, &payload_hash);

    let scope = format!("{date}/{}/{}/aws4_request", params.region, params.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(
        params.credentials.secret_access_key,
        date,
        params.region,
        params.service,
    );
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    SignedHeaders {
        authorization: format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
            params.credentials.access_key_id
        ),
        x_amz_date: amz_date,
        x_amz_content_sha256: payload_hash,
        x_amz_security_token: params.credentials.session_token.map(str::to_owned),
    }
}

/// Lower-cased names → values trimmed, inner runs of spaces collapsed, repeated headers joined
/// with `,` in the order given. Sorted by name, as the canonical form wants.
fn canonical_header_map(headers: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.trim().to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "x-amz-date" | "x-amz-security-token" | "x-amz-content-sha256" | "authorization"
        ) {
            continue;
        }
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        map.entry(name)
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

/// The canonical request text and the `;`-joined signed header names.
fn canonical_request(
    request: &SignableRequest,
    headers: &BTreeMap<String, String>,
    payload_hash: &str,
) -> (String, String) {
    let mut text = String::with_capacity(256);
    text.push_str(&request.method.to_ascii_uppercase());
    text.push('\n');
    text.push_str(&canonical_uri(request.path));
    text.push('\n');
    text.push_str(&canonical_query(request.query));
    text.push('\n');
    for (name, value) in headers {
        let _ = writeln!(text, "{name}:{value}");
    }
    text.push('\n');
    let signed: Vec<&str> = headers.keys().map(String::as_str).collect();
    let signed = signed.join(";");
    text.push_str(&signed);
    text.push('\n');
    text.push_str(payload_hash);
    (text, signed)
}

/// Each segment of the (already encoded) path URI-encoded once more; `/` for an empty path.
pub(crate) fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::with_capacity(path.len() + 16);
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        uri_encode_into(&mut out, segment, true);
    }
    out
}

/// Parameters sorted by name then value, each side decoded (the query arrives encoded) and
/// encoded again in the canonical way; a parameter without `=` has an empty value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let mut n = String::new();
            let mut v = String::new();
            uri_encode_into(&mut n, &percent_decode(name), true);
            uri_encode_into(&mut v, &percent_decode(value), true);
            (n, v)
        })
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// AWS URI encoding: every byte but `A-Z a-z 0-9 - . _ ~` as `%XX` (upper-case hex); `/` too
/// when `encode_slash`.
pub fn uri_encode_into(out: &mut String, text: &str, encode_slash: bool) {
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'.' | b'_' | b'~')
            || (byte == b'/' && !encode_slash)
        {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// Decodes `%XX` escapes; a malformed escape is kept as is. Bytes that do not form UTF-8 are
/// replaced, which cannot happen for queries this gateway builds.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_pair = bytes.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (bytes[i], hex_pair) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The signing key of a day, region and service: HMAC chain over `"AWS4" + secret`.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;
