//! Arbitrary Bedrock ConverseStream answers, translated for each client format. The first
//! byte picks the shape: odd, the bytes are the raw stream (framing errors, bad checksums);
//! even, they are `event-type\npayload` records separated by `\0`, each framed with valid
//! checksums, so the payload decoder is explored too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::translate::stream::WireFormat;

fuzz_target!(|data: &[u8]| {
    let [shape, control @ ..] = data else {
        return;
    };
    let [client, seed, body @ ..] = control else {
        return;
    };
    let mut stream = vec![*client, *seed];
    if shape & 1 == 1 {
        stream.extend_from_slice(body);
    } else {
        for record in body.split(|&b| b == 0) {
            let (event_type, payload) = match record.iter().position(|&b| b == b'\n') {
                Some(i) => (&record[..i], &record[i + 1..]),
                None => (record, &b""[..]),
            };
            let event_type = String::from_utf8_lossy(event_type);
            stream.extend(tollgate_fuzz::event_stream_message(&event_type, payload));
        }
    }
    tollgate_fuzz::translate(WireFormat::Bedrock, &stream);
});
