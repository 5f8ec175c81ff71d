//! How a connection ends: [`CloseInfo`] (the code and reason it ended with), the close the
//! driver is asked to perform, and the rules for what a close frame may carry.

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::protocol::close_code;

/// How a connection ended: the close code and reason, sent by this end or received from
/// the peer. 1006 ([`close_code::ABNORMAL`]) when the socket dropped without a close frame
/// (a FIN or a reset); it is never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The WebSocket close code.
    pub code: u16,
    /// The close reason.
    pub reason: String,
}

impl CloseInfo {
    pub(crate) fn new(code: u16, reason: impl Into<String>) -> Self {
        CloseInfo {
            code,
            reason: reason.into(),
        }
    }

    /// The socket is gone without a close frame.
    pub(crate) fn abnormal(reason: impl Into<String>) -> Self {
        CloseInfo::new(close_code::ABNORMAL, reason)
    }

    /// The close frame that says this.
    pub(crate) fn frame(&self) -> CloseFrame {
        CloseFrame {
            code: CloseCode::from(self.code),
            reason: truncate_reason(&self.reason).to_owned().into(),
        }
    }
}

/// Whether RFC 6455 lets a close frame carry `code` (1004–1006 and 1015 are reserved).
pub(crate) fn sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// WebSocket close reasons are limited to 123 bytes; cut at a character boundary.
pub(crate) fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= 123 {
        return reason;
    }
    let mut end = 123;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}
