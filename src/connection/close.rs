//! How a connection ends: [`CloseInfo`] (the code and reason it ended with), the close the
//! driver is asked to perform, and how long a close frame's reason may be (which codes it
//! may carry is [`CloseCode::is_sendable`]).

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::protocol::CloseCode;

/// How a connection ended: the close code and reason, sent by this end or received from
/// the peer. 1006 ([`CloseCode::ABNORMAL`]) when the socket dropped without a close frame
/// (a FIN or a reset); it is never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The WebSocket close code.
    pub code: CloseCode,
    /// The close reason.
    pub reason: String,
}

impl CloseInfo {
    pub(crate) fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        CloseInfo {
            code,
            reason: reason.into(),
        }
    }

    /// The socket is gone without a close frame.
    pub(crate) fn abnormal(reason: impl Into<String>) -> Self {
        CloseInfo::new(CloseCode::ABNORMAL, reason)
    }

    /// The close frame that says this.
    pub(crate) fn frame(&self) -> CloseFrame {
        CloseFrame {
            code: WsCloseCode::from(self.code.as_u16()),
            reason: truncate_reason(&self.reason).to_owned().into(),
        }
    }
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
