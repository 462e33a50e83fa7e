//! Arbitrary bytes as a streamed OpenAi upstream answer, translated for each client format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::translate::stream::WireFormat;

fuzz_target!(|data: &[u8]| tollgate_fuzz::translate(WireFormat::OpenAi, data));
