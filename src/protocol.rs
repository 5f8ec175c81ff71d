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
    /// The peer's close frame carried no code (RFC 6455; never sent on the wire).
    pub const NO_STATUS: u16 = 1005;
    /// No close frame was received: the TCP connection dropped (RFC 6455; never sent on the wire).
    pub const ABNORMAL: u16 = 1006;
    /// A message was larger than the configured maximum message size (RFC 6455).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// RFC 6455 internal error: a server hook (`on_connection`, `on_disconnect`) panicked;
    /// the connection was closed.
    pub const INTERNAL_SERVER_ERROR: u16 = 1011;
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
    /// `i` is longer than the connection accepts ([`max_id_len`](crate::ServerBuilder::max_id_len)).
    #[error("malformed frame: \"i\" is {len} bytes long; at most {max} are accepted")]
    IdTooLong {
        /// The id's length (its JSON text), in bytes.
        len: usize,
        /// The most accepted.
        max: usize,
    },
}

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

/// The scanner's contract, for tests and the fuzz target: `fast` (the scanner's reading of
/// `text`) is serde_json's reading; or serde_json rejects `text` and the only reason is a
/// payload the scanner left unchecked that is not JSON.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn assert_scanner_agrees_with_serde(fast: &Incoming<'_>, text: &str) {
    match decode_with_serde(text) {
        Ok(slow) => assert_eq!(
            (&fast.name, fast.payload, fast.id, fast.error),
            (&slow.name, slow.payload, slow.id, slow.error),
            "{text:?}"
        ),
        Err(e) => {
            assert!(
                !fast.payload_checked,
                "the scanner accepted {text:?}, serde_json says {e}"
            );
            assert!(
                check_json(fast.payload.unwrap_or("null")).is_err(),
                "the scanner accepted {text:?} with a valid payload, serde_json says {e}"
            );
        }
    }
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

    fn as_bytes(&self) -> &[u8] {
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

/// Builds a frame: `write` fills a per-thread scratch buffer, and the frame gets a copy of
/// exactly its size, so the bytes need no second allocation for their shared header and the
/// scratch buffer's growth is paid once per thread, not per frame.
fn build_frame(
    write: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
) -> serde_json::Result<Utf8Bytes> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(256));
    }
    let finish = |buf: Vec<u8>| {
        // serde_json and the literals here only ever write UTF-8.
        Utf8Bytes::try_from(buf).expect("serde_json writes UTF-8")
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            write(&mut buf)?;
            let frame = finish(buf.as_slice().to_vec());
            if buf.capacity() > 64 * 1024 {
                *buf = Vec::with_capacity(256); // do not keep a huge payload's buffer
            }
            Ok(frame)
        }
        // A payload whose Serialize builds another frame: use a buffer of its own.
        Err(_) => {
            let mut buf = Vec::with_capacity(128);
            write(&mut buf)?;
            Ok(finish(buf))
        }
    })
}

fn write_name(buf: &mut Vec<u8>, name: &str) {
    buf.extend_from_slice(b"{\"n\":");
    if scan::string_stop(name.as_bytes(), 0).is_none() {
        // Nothing to escape (the usual name).
        buf.push(b'"');
        buf.extend_from_slice(name.as_bytes());
        buf.push(b'"');
    } else {
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, name);
    }
}

/// `{"n":name,"p":payload,"i":id}`; without `i` when `id` is `None`.
pub(crate) fn encode_message<T: Serialize + ?Sized>(
    name: &str,
    payload: &T,
    id: Option<u64>,
) -> serde_json::Result<Utf8Bytes> {
    build_frame(|buf| {
        write_name(buf, name);
        buf.extend_from_slice(b",\"p\":");
        serde_json::to_writer(&mut *buf, payload)?;
        if let Some(id) = id {
            buf.extend_from_slice(b",\"i\":");
            buf.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        }
        buf.push(b'}');
        Ok(())
    })
}

/// `{"n":"_r","i":id,"p":payload,"e":null}`.
pub(crate) fn encode_resolve<T: Serialize + ?Sized>(
    id: &RawId,
    payload: &T,
) -> serde_json::Result<Utf8Bytes> {
    build_frame(|buf| {
        buf.extend_from_slice(b"{\"n\":\"_r\",\"i\":");
        buf.extend_from_slice(id.as_bytes());
        buf.extend_from_slice(b",\"p\":");
        serde_json::to_writer(&mut *buf, payload)?;
        buf.extend_from_slice(b",\"e\":null}");
        Ok(())
    })
}

/// `{"n":"_r","i":id,"e":{"name":...,"message":...}}`.
pub(crate) fn encode_reject(id: &RawId, rejection: &Rejection) -> Utf8Bytes {
    let frame = build_frame(|buf| {
        buf.extend_from_slice(b"{\"n\":\"_r\",\"i\":");
        buf.extend_from_slice(id.as_bytes());
        buf.extend_from_slice(b",\"e\":");
        let mark = buf.len();
        if serde_json::to_writer(&mut *buf, rejection).is_err() {
            // A rejection holds only strings and JSON values, so this cannot happen; still,
            // send a plain internal error rather than a broken frame.
            buf.truncate(mark);
            buf.extend_from_slice(
                b"{\"name\":\"InternalError\",\"message\":\"rejection not serializable\"}",
            );
        }
        buf.push(b'}');
        Ok(())
    });
    frame.expect("the writer above never fails")
}

/// The fast path of [`decode`]: a single pass over the frame for the shape every Line and
/// roomwire peer sends (an object with the keys `n`, `p`, `i`, `e` and no escapes in keys or
/// in `n`), validating every value on the way. It answers `None` for anything else — errors,
/// escapes that need decoding, duplicate keys, `\u` escapes, deep nesting — and [`decode`]
/// then asks serde_json, which stays the one judge of what is valid: the scanner accepts a
/// subset of what serde_json accepts and reads it the same way.
///
/// One exception, for speed: the payload of a message whose (non-reserved) name came before
/// it is only delimited, not validated (`payload_checked` is `false`), because a handler
/// deserializes it next and serde_json validates it then; a syntax error found there makes
/// the frame malformed after all ([`check_json`] tells the two kinds of error apart). So the
/// payload is parsed once, not twice. Responses, handshakes and pings are validated whole.
/// A response cannot be checked late the same way: it fills its request's one slot as it
/// arrives, so a malformed one found out later would have taken the place of a valid one
/// sent after it, where a malformed frame must be dropped as if it never came.
pub(crate) mod scan {
    use super::Incoming;

    /// Deeper than this, leave it to serde_json (whose limit is 128).
    const MAX_DEPTH: usize = 64;

    /// Whether `raw` is one JSON value the scanner can vouch for (`false` also when it
    /// cannot tell: escapes it leaves to serde_json, deep nesting).
    pub(crate) fn is_value(raw: &str) -> bool {
        let mut s = Scanner {
            text: raw,
            bytes: raw.as_bytes(),
            pos: 0,
        };
        s.ws();
        if s.value(0).is_none() {
            return false;
        }
        s.ws();
        s.pos == s.bytes.len()
    }

    /// Which of the envelope's members a key names.
    #[derive(Clone, Copy, PartialEq)]
    enum Member {
        Name,
        Payload,
        Id,
        Error,
        Other,
    }

    struct Scanner<'a> {
        text: &'a str,
        bytes: &'a [u8],
        pos: usize,
    }

    pub(crate) fn envelope(text: &str) -> Option<Incoming<'_>> {
        let mut s = Scanner {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        };
        s.ws();
        s.eat(b'{')?;
        let mut msg = Incoming {
            name: std::borrow::Cow::Borrowed(""),
            payload: None,
            id: None,
            error: None,
            payload_checked: true,
        };
        let mut seen = 0u8;
        s.ws();
        if s.peek()? == b'}' {
            return None; // no "n"
        }
        loop {
            s.ws();
            let member = s.key()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            if member != Member::Other {
                let bit = 1 << member as u8;
                if seen & bit != 0 {
                    return None; // a duplicate: serde_json reports it
                }
                seen |= bit;
            }
            if member == Member::Name {
                msg.name = std::borrow::Cow::Borrowed(s.plain_string()?);
            } else {
                let start = s.pos;
                // A named message's payload, after its name: delimited only (see above).
                let deferred =
                    member == Member::Payload && seen & 1 != 0 && !msg.name.starts_with('_');
                if deferred {
                    s.skip_value()?;
                    msg.payload_checked = false;
                } else {
                    s.value(0)?;
                }
                let raw = &s.text[start..s.pos];
                if raw == "null" {
                    msg.payload_checked |= member == Member::Payload;
                }
                let raw = (raw != "null").then_some(raw);
                match member {
                    Member::Payload => msg.payload = raw,
                    Member::Id => msg.id = raw,
                    Member::Error => msg.error = raw,
                    Member::Name | Member::Other => {}
                }
            }
            s.ws();
            match s.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        s.ws();
        (s.pos == s.bytes.len() && seen & 1 != 0).then_some(msg)
    }

    /// The index of the first byte at or after `i` that is `"`, `\` or a control character:
    /// eight bytes per step, then one at a time.
    #[inline]
    pub(crate) fn string_stop(bytes: &[u8], mut i: usize) -> Option<usize> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        while let Some(chunk) = bytes.get(i..i + 8) {
            let x = u64::from_le_bytes(chunk.try_into().ok()?);
            let quote = x ^ (ONES * u64::from(b'"'));
            let backslash = x ^ (ONES * u64::from(b'\\'));
            // A byte's high bit is set where it is zero (or below 0x20): the lowest one set
            // is exact (borrows only make the bytes above it unreliable).
            let hits = (quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash)
                | (x.wrapping_sub(ONES * 0x20) & !x);
            let hits = hits & HIGH;
            if hits != 0 {
                return Some(i + (hits.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        bytes
            .get(i..)?
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .map(|at| i + at)
    }

    impl<'a> Scanner<'a> {
        #[inline]
        fn peek(&self) -> Option<u8> {
            self.bytes.get(self.pos).copied()
        }

        #[inline]
        fn next(&mut self) -> Option<u8> {
            let b = self.peek()?;
            self.pos += 1;
            Some(b)
        }

        #[inline]
        fn eat(&mut self, b: u8) -> Option<()> {
            (self.next()? == b).then_some(())
        }

        #[inline]
        fn ws(&mut self) {
            // Every JSON whitespace byte is <= b' ': one comparison in the usual case.
            while let Some(&b) = self.bytes.get(self.pos) {
                if b > b' ' || !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                self.pos += 1;
            }
        }

        /// An object key: which envelope member it names (one-letter keys, checked at once).
        #[inline]
        fn key(&mut self) -> Option<Member> {
            if let Some(&[b'"', c, b'"']) = self.bytes.get(self.pos..self.pos + 3) {
                let member = match c {
                    b'n' => Member::Name,
                    b'p' => Member::Payload,
                    b'i' => Member::Id,
                    b'e' => Member::Error,
                    b'"' | b'\\' | ..=0x1f => return None,
                    _ => Member::Other,
                };
                self.pos += 3;
                return Some(member);
            }
            self.string()?;
            Some(Member::Other)
        }

        /// A string with no escapes; its contents.
        #[inline]
        fn plain_string(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let start = self.pos;
            let end = string_stop(self.bytes, start)?;
            if self.bytes[end] != b'"' {
                return None;
            }
            self.pos = end + 1;
            self.text.get(start..end)
        }

        /// Skips a string, checking its escapes (`\u` is left to serde_json).
        #[inline]
        fn string(&mut self) -> Option<()> {
            self.eat(b'"')?;
            loop {
                let stop = string_stop(self.bytes, self.pos)?;
                self.pos = stop + 1;
                match self.bytes[stop] {
                    b'"' => return Some(()),
                    b'\\' => match self.next()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        _ => return None,
                    },
                    _ => return None, // a control character
                }
            }
        }

        #[inline]
        fn digits(&mut self) -> usize {
            let start = self.pos;
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
            self.pos - start
        }

        fn number(&mut self) -> Option<()> {
            if self.peek() == Some(b'-') {
                self.pos += 1;
            }
            match self.next()? {
                b'0' => {}
                b'1'..=b'9' => {
                    self.digits();
                }
                _ => return None,
            }
            if self.peek() == Some(b'.') {
                self.pos += 1;
                (self.digits() > 0).then_some(())?;
            }
            if let Some(b'e' | b'E') = self.peek() {
                self.pos += 1;
                if let Some(b'+' | b'-') = self.peek() {
                    self.pos += 1;
                }
                (self.digits() > 0).then_some(())?;
            }
            Some(())
        }

        /// Moves past one value without validating it: a string, an array or object (brackets
        /// counted, strings skipped whole), or the run of bytes up to the next delimiter. It
        /// only has to find where the value ends; serde_json judges it later.
        fn skip_value(&mut self) -> Option<()> {
            match self.peek()? {
                b'"' => self.skip_string(),
                b'{' | b'[' => {
                    let mut depth = 0usize;
                    loop {
                        match self.next()? {
                            b'{' | b'[' => {
                                depth += 1;
                                if depth > MAX_DEPTH {
                                    return None;
                                }
                            }
                            b'}' | b']' => {
                                depth -= 1;
                                if depth == 0 {
                                    return Some(());
                                }
                            }
                            b'"' => {
                                self.pos -= 1;
                                self.skip_string()?;
                            }
                            _ => {}
                        }
                    }
                }
                _ => {
                    let start = self.pos;
                    while let Some(b) = self.peek() {
                        if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                            break;
                        }
                        self.pos += 1;
                    }
                    (self.pos > start).then_some(())
                }
            }
        }

        /// Moves past a string, whatever its escapes.
        #[inline]
        fn skip_string(&mut self) -> Option<()> {
            self.eat(b'"')?;
            loop {
                let stop = string_stop(self.bytes, self.pos)?;
                self.pos = stop + 1;
                match self.bytes[stop] {
                    b'"' => return Some(()),
                    b'\\' => self.pos += 1,
                    _ => {} // a control character: serde_json reports it
                }
            }
        }

        #[inline]
        fn literal(&mut self, word: &[u8]) -> Option<()> {
            let end = self.pos + word.len();
            (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
        }

        fn value(&mut self, depth: usize) -> Option<()> {
            match self.peek()? {
                b'"' => self.string(),
                b'-' | b'0'..=b'9' => self.number(),
                b't' => self.literal(b"true"),
                b'f' => self.literal(b"false"),
                b'n' => self.literal(b"null"),
                b'[' if depth < MAX_DEPTH => {
                    self.pos += 1;
                    self.ws();
                    if self.peek()? == b']' {
                        self.pos += 1;
                        return Some(());
                    }
                    loop {
                        self.ws();
                        self.value(depth + 1)?;
                        self.ws();
                        match self.next()? {
                            b',' => continue,
                            b']' => return Some(()),
                            _ => return None,
                        }
                    }
                }
                b'{' if depth < MAX_DEPTH => {
                    self.pos += 1;
                    self.ws();
                    if self.peek()? == b'}' {
                        self.pos += 1;
                        return Some(());
                    }
                    loop {
                        self.ws();
                        self.string()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                        self.value(depth + 1)?;
                        self.ws();
                        match self.next()? {
                            b',' => continue,
                            b'}' => return Some(()),
                            _ => return None,
                        }
                    }
                }
                _ => None,
            }
        }
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
    fn integer_ids_are_accepted_and_echoed_verbatim() {
        let m = decode(r#"{"n":"x","i":-17}"#).unwrap();
        let id = RawId::new(m.id.unwrap());
        let frame = encode_resolve(&id, &3).unwrap();
        assert_eq!(frame.as_str(), r#"{"n":"_r","i":-17,"p":3,"e":null}"#);
    }

    #[test]
    fn long_ids_are_echoed_too() {
        let raw = format!("\"{}\"", "x".repeat(100));
        let frame = encode_resolve(&RawId::new(&raw), &1).unwrap();
        assert_eq!(
            frame.as_str(),
            format!(r#"{{"n":"_r","i":{raw},"p":1,"e":null}}"#)
        );
    }

    #[test]
    fn a_payload_that_encodes_a_frame_while_serializing_still_encodes() {
        struct Nested;
        impl Serialize for Nested {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let inner = encode_message("inner", &1, None).unwrap();
                s.serialize_str(inner.as_str())
            }
        }
        let frame = encode_message("outer", &Nested, Some(5)).unwrap();
        assert_eq!(
            frame.as_str(),
            r#"{"n":"outer","p":"{\"n\":\"inner\",\"p\":1}","i":5}"#
        );
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
        let id = RawId::new("\"ab\"");
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

    /// The fast scanner must never accept what serde_json rejects, and must read what it
    /// accepts exactly as serde_json does.
    fn assert_scanner_agrees(text: &str) -> bool {
        match scan::envelope(text) {
            Some(fast) => {
                assert_scanner_agrees_with_serde(&fast, text);
                true
            }
            None => false,
        }
    }

    #[test]
    fn the_scanner_takes_the_common_frames() {
        for frame in [
            r#"{"n":"add","p":[1,2],"i":"zg5b"}"#,
            r#"{"n":"_r","i":7,"p":{"a":1,"b":"he\"llo"},"e":null}"#,
            r#" { "n" : "x" , "p" : -1.5e+3 , "e" : false , "extra" : [true, null, {}] } "#,
            r#"{"n":"x","p":null,"i":null}"#,
            r#"{"n":"","p":"tab\tand\\slash\/"}"#,
        ] {
            assert!(
                assert_scanner_agrees(frame),
                "{frame} should take the fast path"
            );
        }
    }

    #[test]
    fn the_scanner_leaves_the_rest_to_serde_json() {
        // Payloads the scanner validates itself: before the name, or a reserved name's.
        const BAD_PAYLOADS: &[&str] = &[
            r#""\ud800""#,
            "[1,]",
            "01",
            "1.",
            ".5",
            "-",
            "tru",
            r#"{"a" 1}"#,
        ];
        for payload in BAD_PAYLOADS {
            for frame in [
                format!(r#"{{"p":{payload},"n":"x"}}"#),
                format!(r#"{{"n":"_r","i":1,"p":{payload}}}"#),
            ] {
                assert!(
                    !assert_scanner_agrees(&frame),
                    "{frame} must not take the fast path"
                );
            }
        }
        for frame in [
            r#"{"n":"x","n":"y"}"#,
            r#"{"n":"\u0041"}"#,
            r#"{"n":"x"} x"#,
            r#"{"n":"x",}"#,
            r#"{"p":1}"#,
            "{\"n\":\"a\u{1}b\"}",
            "{\"n\":\"x\",\"\u{1d}\":1}",
            r#"{"n":"x","""":1}"#,
            r#"{"n":"x","p":[1}"#,
            r#"{"n":"x","p":"open}"#,
        ] {
            assert!(
                !assert_scanner_agrees(frame),
                "{frame} must not take the fast path"
            );
        }
        let deep = format!(r#"{{"n":"x","p":{}{}}}"#, "[".repeat(100), "]".repeat(100));
        assert!(!assert_scanner_agrees(&deep));
    }

    #[test]
    fn a_named_message_s_payload_is_left_for_its_handler_to_validate() {
        let m = decode(r#"{"n":"add","p":{"a":[1,2],"b":"x\"}"},"i":"k"}"#).unwrap();
        assert!(!m.payload_checked);
        assert_eq!(m.payload, Some(r#"{"a":[1,2],"b":"x\"}"}"#));
        assert_eq!(m.id, Some(r#""k""#));
        // Not JSON, yet delimited: the frame decodes, and check_json finds the error.
        for payload in [r#"{"a" 1}"#, "[1,]", "tru", "01"] {
            let frame = format!(r#"{{"n":"x","p":{payload},"i":1}}"#);
            let m = decode(&frame).unwrap();
            assert!(!m.payload_checked);
            assert_eq!(m.payload, Some(payload));
            assert!(check_json(payload).is_err(), "{payload}");
            assert!(assert_scanner_agrees(&frame));
        }
        // Responses and a payload before the name are validated whole.
        assert!(
            decode(r#"{"n":"_r","i":1,"p":[1,2]}"#)
                .unwrap()
                .payload_checked
        );
        assert!(decode(r#"{"p":[1,2],"n":"x"}"#).unwrap().payload_checked);
        assert!(decode(r#"{"n":"x","p":null}"#).unwrap().payload_checked);
    }

    /// Random frames built from envelope pieces, then mutated byte by byte: wherever the
    /// scanner says yes, serde_json must say the same thing.
    #[test]
    fn the_scanner_agrees_with_serde_json_on_random_frames() {
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\"n\"",
            "\"p\"",
            "\"i\"",
            "\"e\"",
            "\"x\"",
            "\"add\"",
            "\"a\\\"b\"",
            "1",
            "-2.5e3",
            "0",
            "true",
            "false",
            "null",
            "\"\\u00e9\"",
            "\"\\n\"",
            "\"é\"",
            "\"\u{1d}\"",
        ];
        let mut fast = 0;
        for _ in 0..20_000 {
            let mut frame = String::from("{\"n\":\"x\"");
            for _ in 0..rand(8) {
                frame.push_str(PIECES[rand(PIECES.len())]);
            }
            if rand(2) == 0 {
                frame.push('}');
            }
            // A few single-byte mutations (kept on char boundaries).
            for _ in 0..rand(3) {
                let at = rand(frame.len() + 1);
                if frame.is_char_boundary(at) {
                    frame.insert(at, ['{', '}', '"', ',', ':', '\\', ' ', '0'][rand(8)]);
                }
            }
            if assert_scanner_agrees(&frame) {
                fast += 1;
            }
        }
        assert!(
            fast > 100,
            "the generator should produce some valid frames ({fast})"
        );
    }
}
