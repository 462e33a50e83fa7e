//! Bedrock error answers: the body is `{"message": "..."}` (some services spell it `Message`)
//! and the exception name is in the `x-amzn-ErrorType` header, e.g.
//! `ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/`.

use serde_json::Value;

/// The bare exception name of an `x-amzn-ErrorType` header value: what precedes the first `:`
/// (the rest is a namespace URL that says nothing to a client).
pub fn exception_name(header: &str) -> &str {
    let name = header.split(':').next().unwrap_or(header).trim();
    // Some responses carry the shape id `namespace#Name` instead.
    name.rsplit('#').next().unwrap_or(name)
}

/// A one-line message for a failed Bedrock call: the exception name (when the header gives
/// one), the HTTP status and Bedrock's own message, or the start of the raw body when it is not
/// the expected JSON.
pub fn error_message(status: u16, error_type_header: Option<&str>, body: &[u8]) -> String {
    let name = error_type_header
        .map(exception_name)
        .filter(|name| !name.is_empty());
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("Message")))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            // Bodies from a proxy in between may be HTML or empty; a bounded excerpt is enough.
            let text = String::from_utf8_lossy(body);
            let trimmed = text.trim();
            match trimmed.char_indices().nth(200) {
                Some((cut, _)) => format!("{}…", &trimmed[..cut]),
                None => trimmed.to_owned(),
            }
        });
    let head = match name {
        Some(name) => format!("Bedrock {name} (HTTP {status})"),
        None => format!("Bedrock error (HTTP {status})"),
    };
    if message.is_empty() {
        head
    } else {
        format!("{head}: {message}")
    }
}
