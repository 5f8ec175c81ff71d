//! The envelope decoder: never panics, and the fast scanner never disagrees with serde_json.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        roomwire::internals::check_decoder(text);
    }
});
