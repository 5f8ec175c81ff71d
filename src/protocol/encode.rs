//! Writing a frame: a request or message ([`encode_message`]) and the two answers to a
//! request ([`encode_resolve`], [`encode_reject`]), each written in one pass.

use serde::Serialize;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{scan, RawId};
use crate::error::Rejection;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::decode;

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
}
