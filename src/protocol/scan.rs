//! The fast path of [`decode`]: a single pass over the frame for the shape every Line and
//! roomwire peer sends (an object with the keys `n`, `p`, `i`, `e` and no escapes in keys or
//! in `n`), validating every value on the way. It answers `None` for anything else — errors,
//! escapes that need decoding, duplicate keys, `\u` escapes, deep nesting — and [`decode`]
//! then asks serde_json, which stays the one judge of what is valid: the scanner accepts a
//! subset of what serde_json accepts and reads it the same way.
//!
//! One exception, for speed: the payload of a message whose (non-reserved) name came before
//! it is only delimited, not validated (`payload_checked` is `false`), because a handler
//! deserializes it next and serde_json validates it then; a syntax error found there makes
//! the frame malformed after all ([`check_json`] tells the two kinds of error apart). So the
//! payload is parsed once, not twice. Responses, handshakes and pings are validated whole.
//! A response cannot be checked late the same way: it fills its request's one slot as it
//! arrives, so a malformed one found out later would have taken the place of a valid one
//! sent after it, where a malformed frame must be dropped as if it never came.
//!
//! [`decode`]: super::decode
//! [`check_json`]: super::check_json

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
            let deferred = member == Member::Payload && seen & 1 != 0 && !msg.name.starts_with('_');
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

/// The scanner's contract, for tests and the fuzz target: `fast` (the scanner's reading of
/// `text`) is serde_json's reading; or serde_json rejects `text` and the only reason is a
/// payload the scanner left unchecked that is not JSON.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn assert_scanner_agrees_with_serde(fast: &Incoming<'_>, text: &str) {
    match super::decode_with_serde(text) {
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
                super::check_json(fast.payload.unwrap_or("null")).is_err(),
                "the scanner accepted {text:?} with a valid payload, serde_json says {e}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{check_json, decode};

    /// The fast scanner must never accept what serde_json rejects, and must read what it
    /// accepts exactly as serde_json does.
    fn assert_scanner_agrees(text: &str) -> bool {
        match envelope(text) {
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
