//! The envelope decoder: never panics, and the fast scanner reads every frame as serde_json
//! does (or leaves a payload that is not JSON for the handler's deserialization to find).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        roomwire::internals::check_decoder(text);
    }
});
