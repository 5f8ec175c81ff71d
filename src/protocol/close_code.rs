//! WebSocket close codes that roomwire sends or reports, and what each means.
//!
//! Codes 4200–4205 and 4299 are Line's; 4210–4298 are roomwire's own. 1005 and 1006 are
//! only reported (in [`CloseInfo`](crate::CloseInfo)), never sent.

/// Normal close (RFC 6455).
pub const NORMAL: u16 = 1000;
/// The server is shutting down (RFC 6455): sent to every connection by `Server::close`.
pub const GOING_AWAY: u16 = 1001;
/// The peer broke the WebSocket protocol (RFC 6455).
pub const PROTOCOL_ERROR: u16 = 1002;
/// The peer's close frame carried no code (RFC 6455; never sent on the wire).
pub const NO_STATUS: u16 = 1005;
/// No close frame was received: the peer's socket ended (a FIN or a reset) without one
/// (RFC 6455; never sent on the wire).
pub const ABNORMAL: u16 = 1006;
/// A text frame that is not UTF-8 (RFC 6455: invalid frame payload data).
pub const INVALID_PAYLOAD: u16 = 1007;
/// A message was larger than the configured maximum message size (RFC 6455).
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// RFC 6455 internal error: the server's `on_connection` hook panicked (or, a bug, roomwire's
/// own connection driver did); the connection was closed. Not to be confused with Line's
/// [`INTERNAL_ERROR`] (4200), which roomwire does not send.
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
