//! Reading a frame: the decoded envelope ([`Incoming`]) and its decoders, and what is kept
//! of a frame once it is decoded (a request's [`RawId`], a [`Payload`] still raw JSON).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{scan, FrameError};

/// A decoded incoming frame, borrowing from the frame text.
/// `payload`, `id` and `error` are the raw JSON text of those members; `null` counts as
/// absent. `id` and `error` are validated; so is `payload` unless `payload_checked` is
/// `false` (see [`scan`]): then it is only known to be one complete value, and whoever
/// reads it must treat a syntax error in it as a malformed frame (see [`check_json`]).
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    pub name: Cow<'a, str>,
    pub payload: Option<&'a str>,
    pub id: Option<&'a str>,
    pub error: Option<&'a str>,
    pub payload_checked: bool,
}

/// Checks that `raw` is one JSON value; serde_json words the error when it is not.
pub(crate) fn check_json(raw: &str) -> Result<(), serde_json::Error> {
    if scan::is_value(raw) {
        return Ok(());
    }
    serde_json::from_str::<serde::de::IgnoredAny>(raw).map(drop)
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
    let msg = match scan::envelope(text) {
        Some(msg) => msg,
        None => decode_with_serde(text)?,
    };
    if let Some(id) = msg.id {
        if !is_valid_id(id) {
            return Err(FrameError::BadId(truncate(id, 64)));
        }
    }
    Ok(msg)
}

/// The reference decoder: serde_json decides, and words the error.
pub(crate) fn decode_with_serde(text: &str) -> Result<Incoming<'_>, FrameError> {
    let env: Envelope<'_> = serde_json::from_str(text)?;
    Ok(Incoming {
        name: env.n,
        payload: env.p.map(RawValue::get),
        id: env.i.map(RawValue::get),
        error: env.e.map(RawValue::get),
        payload_checked: true,
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
pub(crate) fn is_error(e: Option<&str>) -> bool {
    matches!(e, Some(raw) if raw != "false")
}

/// The key a response's `i` refers to, if it is one of our own (integer) request ids.
pub(crate) fn response_key(id: Option<&str>) -> Option<u64> {
    id?.parse().ok()
}

/// The id of a request from the peer, kept as its raw JSON text so the response echoes
/// exactly the same value (a string or an integer). Line's ids (4 characters, quoted) and
/// any other short one are kept inline, without an allocation.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RawId(RawIdRepr);

#[derive(Clone, PartialEq, Eq)]
enum RawIdRepr {
    Inline { len: u8, bytes: [u8; RawId::INLINE] },
    Heap(Box<str>),
}

impl RawId {
    const INLINE: usize = 22;

    /// `raw` is the validated JSON text of a string or an integer.
    pub(crate) fn new(raw: &str) -> Self {
        if raw.len() <= Self::INLINE {
            let mut bytes = [0; Self::INLINE];
            bytes[..raw.len()].copy_from_slice(raw.as_bytes());
            RawId(RawIdRepr::Inline {
                len: raw.len() as u8,
                bytes,
            })
        } else {
            RawId(RawIdRepr::Heap(raw.into()))
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            RawIdRepr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            RawIdRepr::Heap(s) => s.as_bytes(),
        }
    }
}

impl fmt::Debug for RawId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A payload received from the peer, still raw JSON: kept alive with the frame it came in,
/// so nothing is copied until it is deserialized.
#[derive(Clone)]
pub(crate) struct Payload {
    frame: Utf8Bytes,
    /// Offsets into `frame`: frames are at most 4 GiB (see `config::MAX_MESSAGE_SIZE`).
    start: u32,
    end: u32,
}

impl Payload {
    /// `raw` must borrow from `frame` (or be absent: the payload is then `null`).
    pub(crate) fn new(frame: &Utf8Bytes, raw: Option<&str>) -> Self {
        match raw {
            Some(raw) => {
                let start = raw.as_ptr() as usize - frame.as_str().as_ptr() as usize;
                // Frames are at most 4 GiB (`config::MAX_MESSAGE_SIZE`): the offsets fit.
                let offset = |at: usize| u32::try_from(at).unwrap_or(u32::MAX);
                Payload {
                    frame: frame.clone(),
                    start: offset(start),
                    end: offset(start + raw.len()),
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
        // Always in bounds (see `new`); an empty payload, which deserializes to an error,
        // rather than a panic if that ever changed.
        let range = self.start as usize..self.end as usize;
        self.frame.as_str().get(range).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_request_with_a_string_id() {
        let m = decode(r#"{"n":"add","p":[1,2],"i":"zg5b"}"#).unwrap();
        assert_eq!(m.name, "add");
        assert_eq!(m.payload.unwrap(), "[1,2]");
        assert_eq!(m.id.unwrap(), "\"zg5b\"");
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
    fn error_false_means_success() {
        let ok = decode(r#"{"n":"_r","i":1,"e":false}"#).unwrap();
        assert!(!is_error(ok.error));
        let ok = decode(r#"{"n":"_r","i":1,"e":null}"#).unwrap();
        assert!(!is_error(ok.error));
        let err = decode(r#"{"n":"_r","i":1,"e":"no"}"#).unwrap();
        assert!(is_error(err.error));
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
