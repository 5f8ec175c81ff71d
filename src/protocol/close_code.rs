//! [`CloseCode`]: a WebSocket close code, with a named constant for every code roomwire
//! sends or reports.

use std::fmt;

/// A WebSocket close code: what a close frame carries, and what [`CloseInfo`](crate::CloseInfo)
/// reports. Like `http::StatusCode`, a number with a name for every code roomwire uses.
///
/// Codes 4200–4205 and 4299 are Line's; 4210–4298 are roomwire's own.
/// [`NO_STATUS`](Self::NO_STATUS) (1005) and [`ABNORMAL`](Self::ABNORMAL) (1006) are only
/// reported, never sent. docs/PROTOCOL.md lists when each one is used.
///
/// ```
/// use roomwire::CloseCode;
///
/// let code = CloseCode::from(4210);
/// assert_eq!(code, CloseCode::SLOW_CONSUMER);
/// assert_eq!(code.to_string(), "4210 (slow consumer)");
/// assert_eq!(CloseCode::from_u16(4000).to_string(), "4000");
/// assert!(!CloseCode::ABNORMAL.is_sendable());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(u16);

impl CloseCode {
    /// Normal close (RFC 6455).
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// The server is shutting down (RFC 6455): sent to every connection by `Server::close`.
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// The peer broke the WebSocket protocol (RFC 6455).
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// The peer's close frame carried no code (RFC 6455; never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// No close frame was received: the peer's socket ended (a FIN or a reset) without one
    /// (RFC 6455; never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// A text frame that is not UTF-8 (RFC 6455: invalid frame payload data).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// A message was larger than the configured maximum message size (RFC 6455).
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// RFC 6455 internal error: the server's `on_connection` hook panicked (or, a bug,
    /// roomwire's own connection driver did); the connection was closed. Not to be confused
    /// with Line's [`INTERNAL_ERROR`](Self::INTERNAL_ERROR) (4200), which roomwire does not send.
    pub const INTERNAL_SERVER_ERROR: CloseCode = CloseCode(1011);
    /// An internal error (Line).
    pub const INTERNAL_ERROR: CloseCode = CloseCode(4200);
    /// The peer did not answer a ping within the response timeout (Line).
    pub const PING_FAILED: CloseCode = CloseCode(4201);
    /// No handshake within the handshake timeout, or a bad handshake response (Line).
    pub const HANDSHAKE_FAILED: CloseCode = CloseCode(4202);
    /// The handshake was rejected (Line).
    pub const HANDSHAKE_REJECTED: CloseCode = CloseCode(4203);
    /// The peer did not complete the close handshake in time (Line).
    pub const DISCONNECT_TIMEOUT: CloseCode = CloseCode(4204);
    /// The client was disposed (Line).
    pub const DISPOSED: CloseCode = CloseCode(4205);
    /// roomwire: the connection's outbound queue was full (the peer does not read fast enough).
    pub const SLOW_CONSUMER: CloseCode = CloseCode(4210);
    /// roomwire: the connection was in a room closed with `Server::disconnect_room`.
    pub const ROOM_CLOSED: CloseCode = CloseCode(4211);
    /// Unknown error (Line).
    pub const UNKNOWN_ERROR: CloseCode = CloseCode(4299);

    /// The close code `code`, whether roomwire has a name for it or not.
    pub const fn from_u16(code: u16) -> CloseCode {
        CloseCode(code)
    }

    /// The code as a number.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether RFC 6455 lets a close frame carry this code: 1000–1003, 1007–1014 and
    /// 3000–4999 (1004–1006 and 1015 are reserved, the rest unassigned).
    pub const fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// What the code means, for the codes roomwire has a constant for.
    fn name(self) -> Option<&'static str> {
        Some(match self {
            CloseCode::NORMAL => "normal",
            CloseCode::GOING_AWAY => "going away",
            CloseCode::PROTOCOL_ERROR => "protocol error",
            CloseCode::NO_STATUS => "no status",
            CloseCode::ABNORMAL => "abnormal",
            CloseCode::INVALID_PAYLOAD => "invalid payload",
            CloseCode::MESSAGE_TOO_BIG => "message too big",
            CloseCode::INTERNAL_SERVER_ERROR => "internal server error",
            CloseCode::INTERNAL_ERROR => "internal error",
            CloseCode::PING_FAILED => "ping failed",
            CloseCode::HANDSHAKE_FAILED => "handshake failed",
            CloseCode::HANDSHAKE_REJECTED => "handshake rejected",
            CloseCode::DISCONNECT_TIMEOUT => "disconnect timeout",
            CloseCode::DISPOSED => "disposed",
            CloseCode::SLOW_CONSUMER => "slow consumer",
            CloseCode::ROOM_CLOSED => "room closed",
            CloseCode::UNKNOWN_ERROR => "unknown error",
            _ => return None,
        })
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl PartialEq<u16> for CloseCode {
    fn eq(&self, other: &u16) -> bool {
        self.0 == *other
    }
}

impl PartialEq<CloseCode> for u16 {
    fn eq(&self, other: &CloseCode) -> bool {
        *self == other.0
    }
}

/// The number, then the name of a known code: `4210 (slow consumer)`, `4000`.
impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// As [`Display`](fmt::Display): `4210 (slow consumer)`.
impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_number_and_the_name_of_a_known_code() {
        assert_eq!(CloseCode::SLOW_CONSUMER.to_string(), "4210 (slow consumer)");
        assert_eq!(format!("{:?}", CloseCode::NORMAL), "1000 (normal)");
        assert_eq!(CloseCode::from(4000).to_string(), "4000");
    }

    #[test]
    fn only_codes_a_close_frame_may_carry_are_sendable() {
        for code in [1000, 1003, 1007, 1011, 1014, 3000, 4210, 4999] {
            assert!(CloseCode::from(code).is_sendable(), "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
            assert!(!CloseCode::from(code).is_sendable(), "{code}");
        }
    }

    #[test]
    fn converts_to_and_from_u16() {
        assert_eq!(u16::from(CloseCode::ROOM_CLOSED), 4211);
        assert_eq!(CloseCode::from_u16(4211), CloseCode::ROOM_CLOSED);
        assert_eq!(CloseCode::ROOM_CLOSED, 4211);
        assert_eq!(4211, CloseCode::ROOM_CLOSED);
    }
}
