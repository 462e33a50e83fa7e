//! Arbitrary bytes as an OpenAI stream passed through the relay's event scanner, cut into
//! network-sized chunks, the way the relay drives it: it stops reading at the first malformed
//! event and ends the stream with an error of its own. Whatever the bytes, nothing panics; the
//! client receives exactly the upstream's bytes, or with a malformed event, exactly those before
//! it.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tollgate::proxy::EventScanner;

fuzz_target!(|data: &[u8]| {
    let [seed, body @ ..] = data else {
        return;
    };
    let mut scanner = EventScanner::new(false);
    let mut forwarded = Vec::new();
    for chunk in tollgate_fuzz::chunks(body, *seed) {
        if let Some(bytes) = scanner.push(Bytes::copy_from_slice(chunk)) {
            forwarded.extend_from_slice(&bytes);
        }
        if scanner.malformed {
            break;
        }
    }
    if !scanner.malformed {
        if let Some(rest) = scanner.finish() {
            forwarded.extend_from_slice(&rest);
        }
    }
    if !scanner.malformed {
        assert_eq!(forwarded, body, "the relay changed a well-formed stream");
    } else {
        assert!(
            body.starts_with(&forwarded),
            "the relay forwarded bytes it never got"
        );
    }
});
