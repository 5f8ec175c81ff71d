//! The wire envelope: reserved names, close codes, and frame encoding and decoding.
//!
//! Pure functions, no I/O. Every frame is one JSON object
//! `{"n": name, "p": payload, "i": id, "e": error}` (see `docs/PROTOCOL.md`).
//! Decoding borrows from the frame text; payloads stay raw JSON until the typed
//! handler or caller deserializes them once, straight into its own type.

// One concept per file: reading a frame (`envelope`, and the fast `scan`ner it tries
// first), writing one (`encode`), and the close codes. Everything the rest of the crate
// uses is re-exported here, so every path stays `crate::protocol::…`.
mod close_code;
mod encode;
mod envelope;
pub(crate) mod scan;

pub use close_code::CloseCode;
pub(crate) use encode::{encode_message, encode_reject, encode_resolve};
#[cfg(any(test, feature = "internals"))]
pub(crate) use envelope::decode_with_serde;
pub(crate) use envelope::{check_json, decode, is_error, response_key, Incoming, Payload, RawId};
#[cfg(feature = "internals")]
pub(crate) use scan::assert_scanner_agrees_with_serde;

/// Reserved message names (names starting with `_` are reserved).
pub mod names {
    /// The handshake request a client sends first.
    pub const HANDSHAKE: &str = "_h";
    /// A response to a request; `i` says which.
    pub const RESPONSE: &str = "_r";
    /// A ping; answered with the payload `"pong"`.
    pub const PING: &str = "_p";
}

/// Why a frame from the peer could not be decoded. The frame is dropped; the connection stays.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Not JSON, not an object, or `n` missing or not a string.
    #[error("malformed frame (expected a JSON object with a string \"n\"): {0}")]
    Malformed(#[from] serde_json::Error),
    /// `i` is neither a string nor an integer.
    #[error("malformed frame: \"i\" must be a string or an integer, got {0}")]
    BadId(String),
    /// A binary frame that is not UTF-8 text.
    #[error("binary frame is not UTF-8 JSON")]
    NotUtf8,
    /// `i` is longer than the connection accepts ([`max_id_len`](crate::ServerBuilder::max_id_len)).
    #[error("malformed frame: \"i\" is {len} bytes long; at most {max} are accepted")]
    IdTooLong {
        /// The id's length (its JSON text), in bytes.
        len: usize,
        /// The most accepted.
        max: usize,
    },
}
