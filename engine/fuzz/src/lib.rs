//! What every stream fuzz target shares: cutting one input into the chunks a network would
//! deliver, and driving a [`StreamTranslator`] with them while checking what must always hold.

use tollgate::translate::stream::{EncoderOptions, StreamTranslator, WireFormat};

/// Client formats a stream can be translated into.
const CLIENTS: [WireFormat; 4] = [
    WireFormat::OpenAi,
    WireFormat::Anthropic,
    WireFormat::Gemini,
    WireFormat::Responses,
];

/// Splits `data` into chunks whose sizes come from `seed`, so the fuzzer explores every
/// place an event, a UTF-8 sequence or a frame can be cut.
pub fn chunks(data: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut state = u32::from(seed) | 1;
    let mut rest = data;
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let len = 1 + (state >> 16) as usize % 64;
        let (head, tail) = rest.split_at(len.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// Feeds `body` (after two control bytes: client format and chunking seed) to a translator
/// from `upstream`, then ends it. Whatever the bytes, nothing may panic and the client stream
/// must be ended: its format's terminator or an error event, never a silent stop.
pub fn translate(upstream: WireFormat, data: &[u8]) {
    let [client, seed, body @ ..] = data else {
        return;
    };
    let client = CLIENTS[usize::from(*client) % CLIENTS.len()];
    let options = EncoderOptions {
        include_usage: seed & 1 == 1,
        // Small, so oversized events are explored too.
        max_event_bytes: 4096,
        ..EncoderOptions::default()
    };
    let mut translator = StreamTranslator::new(upstream, client, options);
    let mut out = Vec::new();
    for chunk in chunks(body, *seed) {
        translator.feed(chunk, &mut out);
    }
    translator.finish(&mut out);
    assert!(translator.is_ended(), "the client stream was left open");
    assert!(!out.is_empty(), "the client got nothing, not even an error");
    // Accounting reads the counts whatever the upstream claimed.
    let _ = translator.usage().uncached_input();
}

/// One AWS event-stream message (the framing Bedrock streams in) with valid lengths and
/// checksums around `payload`, so the fuzzer reaches the decoder behind the framing rather
/// than stopping at a checksum it cannot guess.
pub fn event_stream_message(event_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut headers = Vec::new();
    for (name, value) in [(":message-type", "event"), (":event-type", event_type)] {
        headers.push(name.len() as u8);
        headers.extend_from_slice(name.as_bytes());
        headers.push(7); // string
        headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        headers.extend_from_slice(value.as_bytes());
    }
    let total = 12 + headers.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&headers);
    out.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    out
}
