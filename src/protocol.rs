//! The wire envelope: reserved names, close codes, and frame encoding and decoding.
//!
//! Pure functions, no I/O. Every frame is one JSON object
//! `{"n": name, "p": payload, "i": id, "e": error}` (see `PROTOCOL.md`).
//! Decoding borrows from the frame text; payloads stay raw JSON until the typed
//! handler or caller deserializes them once, straight into its own type.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::error::Rejection;

/// Reserved message names (names starting with `_` are reserved).
pub mod names {
    /// The handshake request a client sends first.
    pub const HANDSHAKE: &str = "_h";
    /// A response to a request; `i` says which.
    pub const RESPONSE: &str = "_r";
    /// A ping; answered with the payload `"pong"`.
    pub const PING: &str = "_p";
}

/// WebSocket close codes that roomwire sends, and what each means.
///
/// Codes 4200–4205 and 4299 are Line's; 4210–4298 are roomwire's own.
pub mod close_code {
    /// Normal close (RFC 6455).
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down (RFC 6455): sent to every connection by `Server::close`.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the WebSocket protocol (RFC 6455).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// No close frame was received: the TCP connection dropped (RFC 6455; never sent on the wire).
    pub const ABNORMAL: u16 = 1006;
    /// A message was larger than the configured maximum message size (RFC 6455).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// An internal error (Line).
    pub const INTERNAL_ERROR: u16 = 4200;
    /// The peer did not answer a ping within the response timeout (Line).
    pub const PING_FAILED: u16 = 4201;
    /// No handshake within the handshake timeout, or a bad handshake response (Line).
    pub const HANDSHAKE_FAILED: u16 = 4202;
    /// The handshake was rejected (Line).
    pub const HANDSHAKE_REJECTED: u16 = 4203;
    /// The peer did not complete the close handshake in time (Line).
    pub const DISCONNECT_TIMEOUT: u16 = 4204;
    /// The client was disposed (Line).
    pub const DISPOSED: u16 = 4205;
    /// roomwire: the connection's outbound queue was full (the peer does not read fast enough).
    pub const SLOW_CONSUMER: u16 = 4210;
    /// roomwire: the connection was in a room closed with `Server::disconnect_room`.
    pub const ROOM_CLOSED: u16 = 4211;
    /// Unknown error (Line).
    pub const UNKNOWN_ERROR: u16 = 4299;
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
}

/// A decoded incoming frame, borrowing from the frame text.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    pub name: Cow<'a, str>,
    pub payload: Option<&'a RawValue>,
    pub id: Option<&'a RawValue>,
    pub error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    n: Cow<'a, str>,
    #[serde(borrow, default)]
    p: Option<&'a RawValue>,
    #[serde(borrow, default)]
    i: Option<&'a RawValue>,
    #[serde(borrow, default)]
    e: Option<&'a RawValue>,
}

/// Decodes one frame. `i` is checked to be a string or an integer; `null` counts as absent.
pub(crate) fn decode(text: &str) -> Result<Incoming<'_>, FrameError> {
    let env: Envelope<'_> = serde_json::from_str(text)?;
    if let Some(id) = env.i {
        if !is_valid_id(id.get()) {
            return Err(FrameError::BadId(truncate(id.get(), 64)));
        }
    }
    Ok(Incoming {
        name: env.n,
        payload: env.p,
        id: env.i,
        error: env.e,
    })
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

fn is_valid_id(raw: &str) -> bool {
    raw.starts_with('"') || raw.parse::<i64>().is_ok() || raw.parse::<u64>().is_ok()
}

/// `e` absent, `null` or `false` means success.
pub(crate) fn is_error(e: Option<&RawValue>) -> bool {
    matches!(e, Some(raw) if raw.get() != "false")
}

/// The key a response's `i` refers to, if it is one of our own (integer) request ids.
pub(crate) fn response_key(id: Option<&RawValue>) -> Option<u64> {
    id?.get().parse().ok()
}

/// The id of a request from the peer, kept as its raw JSON text so the response echoes
/// exactly the same value (a string or an integer).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RawId(Box<str>);

impl RawId {
    pub(crate) fn new(raw: &RawValue) -> Self {
        RawId(raw.get().into())
    }
}

impl fmt::Debug for RawId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A payload received from the peer, still raw JSON: kept alive with the frame it came in,
/// so nothing is copied until it is deserialized.
#[derive(Clone)]
pub(crate) struct Payload {
    frame: Utf8Bytes,
    start: usize,
    end: usize,
}

impl Payload {
    /// `raw` must borrow from `frame` (or be absent: the payload is then `null`).
    pub(crate) fn new(frame: &Utf8Bytes, raw: Option<&RawValue>) -> Self {
        match raw {
            Some(raw) => {
                let start = raw.get().as_ptr() as usize - frame.as_str().as_ptr() as usize;
                Payload {
                    frame: frame.clone(),
                    start,
                    end: start + raw.get().len(),
                }
            }
            None => Payload {
                frame: Utf8Bytes::from_static("null"),
                start: 0,
                end: 4,
            },
        }
    }

    pub(crate) fn get(&self) -> &str {
        &self.frame.as_str()[self.start..self.end]
    }

    pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.get())
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

fn finish(buf: Vec<u8>) -> Utf8Bytes {
    // serde_json and the literals below only ever write UTF-8.
    Utf8Bytes::try_from(buf).expect("serde_json writes UTF-8")
}

fn write_name(buf: &mut Vec<u8>, name: &str) {
    buf.extend_from_slice(b"{\"n\":");
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, name);
}

/// `{"n":name,"p":payload,"i":id}`; without `i` when `id` is `None`.
pub(crate) fn encode_message<T: Serialize + ?Sized>(
    name: &str,
    payload: &T,
    id: Option<u64>,
) -> serde_json::Result<Utf8Bytes> {
    let mut buf = Vec::with_capacity(128);
    write_name(&mut buf, name);
    buf.extend_from_slice(b",\"p\":");
    serde_json::to_writer(&mut buf, payload)?;
    if let Some(id) = id {
        buf.extend_from_slice(b",\"i\":");
        buf.extend_from_slice(id.to_string().as_bytes());
    }
    buf.push(b'}');
    Ok(finish(buf))
}

/// `{"n":"_r","i":id,"p":payload,"e":null}`.
pub(crate) fn encode_resolve<T: Serialize + ?Sized>(
    id: &RawId,
    payload: &T,
) -> serde_json::Result<Utf8Bytes> {
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(b"{\"n\":\"_r\",\"i\":");
    buf.extend_from_slice(id.0.as_bytes());
    buf.extend_from_slice(b",\"p\":");
    serde_json::to_writer(&mut buf, payload)?;
    buf.extend_from_slice(b",\"e\":null}");
    Ok(finish(buf))
}

/// `{"n":"_r","i":id,"e":{"name":...,"message":...}}`.
pub(crate) fn encode_reject(id: &RawId, rejection: &Rejection) -> Utf8Bytes {
    let mut buf = Vec::with_capacity(96);
    buf.extend_from_slice(b"{\"n\":\"_r\",\"i\":");
    buf.extend_from_slice(id.0.as_bytes());
    buf.extend_from_slice(b",\"e\":");
    let mark = buf.len();
    if serde_json::to_writer(&mut buf, rejection).is_err() {
        // A rejection holds only strings and JSON values, so this cannot happen; still,
        // send a plain internal error rather than a broken frame.
        buf.truncate(mark);
        buf.extend_from_slice(
            b"{\"name\":\"InternalError\",\"message\":\"rejection not serializable\"}",
        );
    }
    buf.push(b'}');
    finish(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_request_with_a_string_id() {
        let m = decode(r#"{"n":"add","p":[1,2],"i":"zg5b"}"#).unwrap();
        assert_eq!(m.name, "add");
        assert_eq!(m.payload.unwrap().get(), "[1,2]");
        assert_eq!(m.id.unwrap().get(), "\"zg5b\"");
        assert!(m.error.is_none());
    }

    #[test]
    fn null_id_and_null_payload_count_as_absent() {
        let m = decode(r#"{"n":"x","p":null,"i":null}"#).unwrap();
        assert!(m.payload.is_none());
        assert!(m.id.is_none());
    }

    #[test]
    fn rejects_what_is_not_an_envelope() {
        for bad in [
            "not json",
            "[1,2]",
            "42",
            r#"{"p":1}"#,
            r#"{"n":5}"#,
            r#"{"n":"x","i":1.5}"#,
            r#"{"n":"x","i":{}}"#,
            r#"{"n":"x","i":true}"#,
        ] {
            assert!(decode(bad).is_err(), "{bad} should not decode");
        }
    }

    #[test]
    fn integer_ids_are_accepted_and_echoed_verbatim() {
        let m = decode(r#"{"n":"x","i":-17}"#).unwrap();
        let id = RawId::new(m.id.unwrap());
        let frame = encode_resolve(&id, &3).unwrap();
        assert_eq!(frame.as_str(), r#"{"n":"_r","i":-17,"p":3,"e":null}"#);
    }

    #[test]
    fn error_false_means_success() {
        let ok = decode(r#"{"n":"_r","i":1,"e":false}"#).unwrap();
        assert!(!is_error(ok.error));
        let ok = decode(r#"{"n":"_r","i":1,"e":null}"#).unwrap();
        assert!(!is_error(ok.error));
        let err = decode(r#"{"n":"_r","i":1,"e":"no"}"#).unwrap();
        assert!(is_error(err.error));
    }

    #[test]
    fn encodes_messages_and_rejections() {
        let f = encode_message("say \"hi\"", &serde_json::json!({"a":1}), Some(9)).unwrap();
        assert_eq!(f.as_str(), r#"{"n":"say \"hi\"","p":{"a":1},"i":9}"#);
        let f = encode_message("n", &(), None).unwrap();
        assert_eq!(f.as_str(), r#"{"n":"n","p":null}"#);
        let id = RawId("\"ab\"".into());
        let f = encode_reject(&id, &Rejection::new("NoHandler", "none"));
        assert_eq!(
            f.as_str(),
            r#"{"n":"_r","i":"ab","e":{"name":"NoHandler","message":"none"}}"#
        );
    }

    #[test]
    fn payload_borrows_the_frame() {
        let frame = Utf8Bytes::from(r#"{"n":"_r","i":3,"p":{"x":[1]}}"#.to_string());
        let m = decode(&frame).unwrap();
        let p = Payload::new(&frame, m.payload);
        assert_eq!(p.get(), r#"{"x":[1]}"#);
        let none = Payload::new(&frame, None);
        assert_eq!(none.deserialize::<Option<u8>>().unwrap(), None);
    }
}
