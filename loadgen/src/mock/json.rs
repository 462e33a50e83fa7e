//! Tiny helpers for writing JSON by hand into a buffer: responses are pre-split templates with a
//! few dynamic values, which is much cheaper than building `serde_json::Value`s per request.

use std::io::Write;

pub fn raw(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(s.as_bytes());
}

pub fn num(buf: &mut Vec<u8>, n: impl itoa::Integer) {
    raw(buf, itoa::Buffer::new().format(n));
}

/// A JSON string literal, escaped.
pub fn string(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        raw(buf, s);
        buf.push(b'"');
    } else if serde_json::to_writer(&mut *buf, s).is_err() {
        raw(buf, "\"\"");
    }
}

pub fn float(buf: &mut Vec<u8>, f: f32) {
    let _ = write!(buf, "{f:.6}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_only_when_needed() {
        let mut b = Vec::new();
        string(&mut b, "gpt-4o");
        raw(&mut b, ",");
        string(&mut b, "a\"b\n");
        raw(&mut b, ",");
        num(&mut b, 42u64);
        assert_eq!(String::from_utf8(b).unwrap(), r#""gpt-4o","a\"b\n",42"#);
    }
}
