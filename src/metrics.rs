//! Metrics (feature `metrics`): counters and gauges reported through the
//! [`metrics`](https://docs.rs/metrics) facade, to whatever recorder the application
//! installs (Prometheus, StatsD, ...). Every name is a constant here, with what it counts
//! and its labels; the README has them as a table, and `examples/metrics.rs` serves them
//! in Prometheus' text format on `GET /metrics`.
//!
//! **Install the recorder before building the [`Server`](crate::Server).** roomwire
//! registers every metric once per process, with the recorder installed when the first
//! server is built (or, if that comes first, when the first event is counted), and keeps
//! the handles: counting an event is then one atomic operation, with no lookup, no
//! formatting and no allocation. A recorder installed later sees none of roomwire's
//! metrics.
//!
//! Only the server's connections are counted. The Rust client (`roomwire::client`) runs
//! the same connection machinery, but its frames, requests and closes are not counted: a
//! process that is a server and a client at once reports what its server did.
//!
//! Label values are fixed sets (listed with each metric): a label never carries a name,
//! an id or anything else a client chooses.
//!
//! Without the feature nothing is registered or counted, and the calls roomwire makes at
//! each event compile to nothing.
// Without the feature, the names are not public and the event functions do nothing.
#![cfg_attr(
    not(feature = "metrics"),
    allow(dead_code, unused_variables, unused_mut, unreachable_pub)
)]

/// Defines the metric names: each a documented constant, and (with the feature) the list
/// the recorder is told about, each described with the first paragraph of its doc.
macro_rules! metric_names {
    ($(
        $(#[doc = $doc:literal])*
        $kind:ident $name:ident = $value:literal;
    )*) => {
        $(
            $(#[doc = $doc])*
            pub const $name: &str = $value;
        )*

        /// Every metric: its kind, name and doc.
        #[cfg(feature = "metrics")]
        const ALL: &[(Kind, &str, &str)] = &[$((Kind::$kind, $value, concat!($($doc, "\n"),*))),*];
    };
}

metric_names! {
    /// WebSocket connections open now: upgraded and not yet closed, whether handshaking or
    /// connected.
    ///
    /// Gauge. It counts from the upgrade to the close, before `on_disconnect` runs
    /// ([`Server::open_connections`](crate::Server::open_connections) also counts requests
    /// still in their HTTP phase).
    Gauge CONNECTIONS_OPEN = "roomwire_connections_open";

    /// WebSocket connections accepted: upgrade requests that became connections.
    ///
    /// Counter.
    Counter CONNECTIONS_ACCEPTED = "roomwire_connections_accepted_total";

    /// Connections refused before becoming WebSocket connections, by reason.
    ///
    /// Counter. Label `reason`: `limit` (past
    /// [`max_connections`](crate::ServerBuilder::max_connections): 503), `denied` (by the
    /// [upgrade filter](crate::Server::on_upgrade)), `not_websocket` (not a WebSocket
    /// upgrade request: 400, 405 or 426), `path` (not the server's
    /// [path](crate::ServerBuilder::path): 404), `closing` (the server is closing: 503, or
    /// the close came during the HTTP phase), `failed` (the HTTP request failed or never
    /// came, the upgrade or the TLS handshake failed or timed out, the upgrade filter
    /// panicked or did not answer in time).
    Counter CONNECTIONS_REFUSED = "roomwire_connections_refused_total";

    /// Connections closed, by the close code they ended with.
    ///
    /// Counter. Label `code`: the code, ours or the peer's when it closed first (`1006`
    /// when the socket dropped without a close frame). Codes roomwire knows (those of
    /// [`CloseCode`](crate::CloseCode), and RFC 6455's 1000-1015) are
    /// labelled by number; any other code a client sends is `other`.
    Counter CONNECTIONS_CLOSED = "roomwire_connections_closed_total";

    /// Handshakes that ended, by outcome.
    ///
    /// Counter. Label `outcome`: `accepted`, `rejected` (by the handshake handler, or
    /// because it panicked), `timed_out` (no handshake within the
    /// [handshake timeout](crate::ServerBuilder::handshake_timeout): 4202).
    Counter HANDSHAKES = "roomwire_handshakes_total";

    /// Requests and messages received from clients, by outcome.
    ///
    /// Counter. Label `outcome`: `ok` (the handler returned `Ok`), `rejected` (it returned
    /// `Err`), `panicked` (answered `InternalError`), `no_handler`, `invalid_payload`,
    /// `too_many` (past
    /// [`max_requests_in_flight`](crate::ServerBuilder::max_requests_in_flight), or too
    /// many held behind a pending handshake), `handshake_required`, `unknown_message` (a
    /// reserved name), `name_too_long`, `disconnected`. Fire-and-forget messages count as
    /// requests do. A handler still running when its connection closes is dropped and not
    /// counted; nor are frames dropped as malformed (see `roomwire_malformed_frames_total`).
    Counter REQUESTS_RECEIVED = "roomwire_requests_received_total";

    /// Requests sent to clients, by outcome.
    ///
    /// Counter. Label `outcome`: `ok` (the client resolved it), `rejected` (the client
    /// rejected it), `timeout`, `disconnected` (the connection closed first), `cancelled`
    /// (the sender stopped waiting: its future was dropped). The pings the server sends
    /// (`_p`) are requests too and count here. A broadcast that awaits replies counts one
    /// request per member.
    Counter REQUESTS_SENT = "roomwire_requests_sent_total";

    /// Requests sent to clients that await their response now.
    ///
    /// Gauge.
    Gauge REQUESTS_PENDING = "roomwire_requests_pending";

    /// Frames received from clients: text frames, and binary frames holding UTF-8 (roomwire
    /// reads both as text; a message fragmented over several frames counts once).
    ///
    /// Counter. WebSocket control frames (ping, pong, close) are not counted; a binary frame
    /// that is not UTF-8 counts in `roomwire_malformed_frames_total`.
    Counter FRAMES_RECEIVED = "roomwire_frames_received_total";

    /// Bytes of the frames counted by `roomwire_frames_received_total`: their payloads,
    /// without the WebSocket framing.
    ///
    /// Counter.
    Counter RECEIVED_BYTES = "roomwire_received_bytes_total";

    /// Frames written to clients: responses, requests, messages, broadcasts.
    ///
    /// Counter. Close frames and WebSocket pongs are not counted.
    Counter FRAMES_SENT = "roomwire_frames_sent_total";

    /// Bytes of the frames counted by `roomwire_frames_sent_total`: their payloads,
    /// without the WebSocket framing.
    ///
    /// Counter.
    Counter SENT_BYTES = "roomwire_sent_bytes_total";

    /// Frames dropped as malformed (not a valid envelope); their connection stays open.
    ///
    /// Counter.
    Counter MALFORMED_FRAMES = "roomwire_malformed_frames_total";

    /// Connections the server began to close as slow consumers (4210): their outbound queue
    /// was full.
    ///
    /// Counter.
    Counter SLOW_CONSUMER_CLOSES = "roomwire_slow_consumer_closes_total";

    /// Connections the server began to close because a client sent a message over
    /// `max_message_size` (1009).
    ///
    /// Counter.
    Counter MESSAGE_TOO_BIG_CLOSES = "roomwire_message_too_big_closes_total";

    /// Rooms that exist now (that have members).
    ///
    /// Gauge.
    Gauge ROOMS = "roomwire_rooms";

    /// Room memberships now: the members of every room, added up (a connection in three
    /// rooms counts three times).
    ///
    /// Gauge.
    Gauge ROOM_MEMBERS = "roomwire_room_members";
}

/// Defines a label's values: an enum, and the text of each value.
macro_rules! label_values {
    ($(#[doc = $doc:literal])* $name:ident { $($(#[doc = $vdoc:literal])* $variant:ident = $value:literal,)* }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name {
            $($(#[doc = $vdoc])* $variant,)*
        }

        impl $name {
            const ALL: &'static [$name] = &[$($name::$variant),*];

            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value,)*
                }
            }
        }
    };
}

label_values! {
    /// Why a connection was refused (`reason` of `roomwire_connections_refused_total`).
    Refused {
        Limit = "limit",
        Denied = "denied",
        NotWebSocket = "not_websocket",
        Path = "path",
        Closing = "closing",
        Failed = "failed",
    }
}

label_values! {
    /// How a handshake ended (`outcome` of `roomwire_handshakes_total`).
    Handshake {
        Accepted = "accepted",
        Rejected = "rejected",
        TimedOut = "timed_out",
    }
}

label_values! {
    /// How a request from a client ended (`outcome` of `roomwire_requests_received_total`).
    Received {
        Ok = "ok",
        Rejected = "rejected",
        Panicked = "panicked",
        NoHandler = "no_handler",
        InvalidPayload = "invalid_payload",
        TooMany = "too_many",
        HandshakeRequired = "handshake_required",
        UnknownMessage = "unknown_message",
        NameTooLong = "name_too_long",
        Disconnected = "disconnected",
    }
}

label_values! {
    /// How a request to a client ended (`outcome` of `roomwire_requests_sent_total`).
    Sent {
        Ok = "ok",
        Rejected = "rejected",
        Timeout = "timeout",
        Disconnected = "disconnected",
        Cancelled = "cancelled",
    }
}

/// The close codes labelled by number; any other is `other`.
const CLOSE_CODES: [(u16, &str); 24] = [
    (1000, "1000"),
    (1001, "1001"),
    (1002, "1002"),
    (1003, "1003"),
    (1005, "1005"),
    (1006, "1006"),
    (1007, "1007"),
    (1008, "1008"),
    (1009, "1009"),
    (1010, "1010"),
    (1011, "1011"),
    (1012, "1012"),
    (1013, "1013"),
    (1014, "1014"),
    (1015, "1015"),
    (4200, "4200"),
    (4201, "4201"),
    (4202, "4202"),
    (4203, "4203"),
    (4204, "4204"),
    (4205, "4205"),
    (4210, "4210"),
    (4211, "4211"),
    (4299, "4299"),
];

/// Registers every metric with the recorder installed now, if that has not happened yet
/// (see the module docs). Called when a server is built.
#[inline]
pub(crate) fn register() {
    #[cfg(feature = "metrics")]
    let _ = recorded::handles();
}

/// Runs `$body` with the registered handles as `$h` when the feature is on; nothing
/// otherwise.
macro_rules! record {
    (|$h:ident| $body:expr) => {{
        #[cfg(feature = "metrics")]
        {
            let $h = recorded::handles();
            $body;
        }
    }};
}

/// The front door refused a connection, for `reason`.
#[inline]
pub(crate) fn connection_refused(reason: Refused) {
    record!(|h| h.connections_refused[reason as usize].increment(1));
}

/// A WebSocket connection was accepted: counted, and open until the returned guard is
/// [`closed`](OpenConnection::closed) (or dropped, if its task ends some other way).
#[inline]
pub(crate) fn connection_accepted() -> OpenConnection {
    record!(|h| {
        h.connections_accepted.increment(1);
        h.connections_open.increment(1.0);
    });
    OpenConnection {
        #[cfg(feature = "metrics")]
        open: true,
    }
}

/// A connection counted in `roomwire_connections_open`, until it is closed.
#[derive(Debug)]
#[must_use = "the connection is open until this is closed or dropped"]
pub(crate) struct OpenConnection {
    #[cfg(feature = "metrics")]
    open: bool,
}

impl OpenConnection {
    /// The connection closed with `code`.
    #[inline]
    pub(crate) fn closed(mut self, code: crate::CloseCode) {
        let code = code.as_u16();
        record!(|h| {
            let i = CLOSE_CODES
                .iter()
                .position(|(c, _)| *c == code)
                .unwrap_or(CLOSE_CODES.len());
            h.connections_closed[i].increment(1);
            h.connections_open.decrement(1.0);
            self.open = false;
        });
    }
}

#[cfg(feature = "metrics")]
impl Drop for OpenConnection {
    fn drop(&mut self) {
        if self.open {
            recorded::handles().connections_open.decrement(1.0);
        }
    }
}

/// A handshake ended with `outcome`.
#[inline]
pub(crate) fn handshake(outcome: Handshake) {
    record!(|h| h.handshakes[outcome as usize].increment(1));
}

/// A room was created (its first member joined).
#[inline]
pub(crate) fn room_created() {
    record!(|h| h.rooms.increment(1.0));
}

/// A room was removed (its last member left).
#[inline]
pub(crate) fn room_removed() {
    record!(|h| h.rooms.decrement(1.0));
}

/// A connection joined a room.
#[inline]
pub(crate) fn room_joined() {
    record!(|h| h.room_members.increment(1.0));
}

/// A connection left a room.
#[inline]
pub(crate) fn room_left() {
    record!(|h| h.room_members.decrement(1.0));
}

/// Whether one end of a socket is counted: the server's connections are, the Rust client's
/// socket (which runs the same driver, queue and pending table) is not. Every event on
/// those shared paths goes through it. Without the feature it is empty, and so is every
/// call.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Meter {
    #[cfg(feature = "metrics")]
    on: bool,
}

impl Meter {
    /// A server connection's: counted.
    pub(crate) const SERVER: Meter = Meter {
        #[cfg(feature = "metrics")]
        on: true,
    };

    /// Runs `f` with the handles when this end is counted.
    #[cfg(feature = "metrics")]
    #[inline]
    fn record(self, f: impl FnOnce(&recorded::Handles)) {
        if self.on {
            f(recorded::handles());
        }
    }

    /// Frames received, counted when the returned tally is dropped (once per read turn).
    #[inline]
    pub(crate) fn received(self) -> Tally {
        Tally {
            #[cfg(feature = "metrics")]
            meter: self,
            #[cfg(feature = "metrics")]
            sent: false,
            #[cfg(feature = "metrics")]
            frames: 0,
            #[cfg(feature = "metrics")]
            bytes: 0,
        }
    }

    /// Frames written, counted when the returned tally is dropped (once per write).
    #[inline]
    pub(crate) fn sent(self) -> Tally {
        Tally {
            #[cfg(feature = "metrics")]
            meter: self,
            #[cfg(feature = "metrics")]
            sent: true,
            #[cfg(feature = "metrics")]
            frames: 0,
            #[cfg(feature = "metrics")]
            bytes: 0,
        }
    }

    /// A request or message from the peer ended with `outcome`.
    #[inline]
    pub(crate) fn request_received(self, outcome: Received) {
        #[cfg(feature = "metrics")]
        self.record(|h| h.requests_received[outcome as usize].increment(1));
    }

    /// A request to the peer was registered: it awaits its response.
    #[inline]
    pub(crate) fn request_pending(self) {
        #[cfg(feature = "metrics")]
        self.record(|h| h.requests_pending.increment(1.0));
    }

    /// A request to the peer that was awaiting its response ended with `outcome`.
    #[inline]
    pub(crate) fn request_sent(self, outcome: Sent) {
        #[cfg(feature = "metrics")]
        self.record(|h| {
            h.requests_sent[outcome as usize].increment(1);
            h.requests_pending.decrement(1.0);
        });
    }

    /// A request registered as pending was never sent (its frame could not be queued).
    #[inline]
    pub(crate) fn request_withdrawn(self) {
        #[cfg(feature = "metrics")]
        self.record(|h| h.requests_pending.decrement(1.0));
    }

    /// The handshake did not complete in time.
    #[inline]
    pub(crate) fn handshake_timed_out(self) {
        #[cfg(feature = "metrics")]
        self.record(|h| h.handshakes[Handshake::TimedOut as usize].increment(1));
    }

    /// A frame was dropped as malformed.
    #[inline]
    pub(crate) fn malformed_frame(self) {
        #[cfg(feature = "metrics")]
        self.record(|h| h.malformed_frames.increment(1));
    }

    /// The connection is being closed as a slow consumer (4210).
    #[inline]
    pub(crate) fn slow_consumer(self) {
        #[cfg(feature = "metrics")]
        self.record(|h| h.slow_consumer_closes.increment(1));
    }

    /// The connection is being closed because the peer sent a message too big (1009).
    #[inline]
    pub(crate) fn message_too_big(self) {
        #[cfg(feature = "metrics")]
        self.record(|h| h.message_too_big_closes.increment(1));
    }
}

/// Frames and their bytes, added up over one read or write turn and counted when dropped
/// (whichever way the turn ends): two atomic additions per turn, none per frame.
#[derive(Debug)]
pub(crate) struct Tally {
    #[cfg(feature = "metrics")]
    meter: Meter,
    #[cfg(feature = "metrics")]
    sent: bool,
    #[cfg(feature = "metrics")]
    frames: u64,
    #[cfg(feature = "metrics")]
    bytes: u64,
}

impl Tally {
    /// One frame of `len` bytes.
    #[inline]
    pub(crate) fn add(&mut self, len: usize) {
        #[cfg(feature = "metrics")]
        {
            self.frames += 1;
            self.bytes += len as u64;
        }
    }
}

#[cfg(feature = "metrics")]
impl Drop for Tally {
    fn drop(&mut self) {
        if self.frames == 0 {
            return;
        }
        let (frames, bytes) = (self.frames, self.bytes);
        let sent = self.sent;
        self.meter.record(|h| {
            let (frames_counter, bytes_counter) = if sent {
                (&h.frames_sent, &h.sent_bytes)
            } else {
                (&h.frames_received, &h.received_bytes)
            };
            frames_counter.increment(frames);
            bytes_counter.increment(bytes);
        });
    }
}

/// What a metric is, to the recorder.
#[cfg(feature = "metrics")]
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// The handles, registered once per process.
#[cfg(feature = "metrics")]
mod recorded {
    use std::sync::OnceLock;

    use ::metrics::{counter, describe_counter, describe_gauge, gauge, Counter, Gauge};

    use super::*;

    pub(super) struct Handles {
        pub(super) connections_open: Gauge,
        pub(super) connections_accepted: Counter,
        pub(super) connections_refused: [Counter; Refused::ALL.len()],
        /// One per [`CLOSE_CODES`], then `other`.
        pub(super) connections_closed: [Counter; CLOSE_CODES.len() + 1],
        pub(super) handshakes: [Counter; Handshake::ALL.len()],
        pub(super) requests_received: [Counter; Received::ALL.len()],
        pub(super) requests_sent: [Counter; Sent::ALL.len()],
        pub(super) requests_pending: Gauge,
        pub(super) frames_received: Counter,
        pub(super) received_bytes: Counter,
        pub(super) frames_sent: Counter,
        pub(super) sent_bytes: Counter,
        pub(super) malformed_frames: Counter,
        pub(super) slow_consumer_closes: Counter,
        pub(super) message_too_big_closes: Counter,
        pub(super) rooms: Gauge,
        pub(super) room_members: Gauge,
    }

    /// The handles, registered on first use with the recorder installed then.
    #[inline]
    pub(super) fn handles() -> &'static Handles {
        static HANDLES: OnceLock<Handles> = OnceLock::new();
        HANDLES.get_or_init(register)
    }

    fn register() -> Handles {
        for (kind, name, doc) in ALL {
            // The first paragraph of the constant's doc, on one line.
            let first = doc.split("\n\n").next().unwrap_or_default();
            let description = first.split_whitespace().collect::<Vec<_>>().join(" ");
            match kind {
                Kind::Counter => describe_counter!(*name, description),
                Kind::Gauge => describe_gauge!(*name, description),
            }
        }
        Handles {
            connections_open: gauge!(CONNECTIONS_OPEN),
            connections_accepted: counter!(CONNECTIONS_ACCEPTED),
            connections_refused: std::array::from_fn(
                |i| counter!(CONNECTIONS_REFUSED, "reason" => Refused::ALL[i].as_str()),
            ),
            connections_closed: std::array::from_fn(|i| {
                let code = CLOSE_CODES.get(i).map_or("other", |(_, label)| label);
                counter!(CONNECTIONS_CLOSED, "code" => code)
            }),
            handshakes: std::array::from_fn(
                |i| counter!(HANDSHAKES, "outcome" => Handshake::ALL[i].as_str()),
            ),
            requests_received: std::array::from_fn(
                |i| counter!(REQUESTS_RECEIVED, "outcome" => Received::ALL[i].as_str()),
            ),
            requests_sent: std::array::from_fn(
                |i| counter!(REQUESTS_SENT, "outcome" => Sent::ALL[i].as_str()),
            ),
            requests_pending: gauge!(REQUESTS_PENDING),
            frames_received: counter!(FRAMES_RECEIVED),
            received_bytes: counter!(RECEIVED_BYTES),
            frames_sent: counter!(FRAMES_SENT),
            sent_bytes: counter!(SENT_BYTES),
            malformed_frames: counter!(MALFORMED_FRAMES),
            slow_consumer_closes: counter!(SLOW_CONSUMER_CLOSES),
            message_too_big_closes: counter!(MESSAGE_TOO_BIG_CLOSES),
            rooms: gauge!(ROOMS),
            room_members: gauge!(ROOM_MEMBERS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CLOSE_CODES;
    use crate::protocol::CloseCode;

    #[test]
    fn every_close_code_roomwire_knows_is_labelled_by_its_number() {
        let known = [
            CloseCode::NORMAL,
            CloseCode::GOING_AWAY,
            CloseCode::PROTOCOL_ERROR,
            CloseCode::NO_STATUS,
            CloseCode::ABNORMAL,
            CloseCode::INVALID_PAYLOAD,
            CloseCode::MESSAGE_TOO_BIG,
            CloseCode::INTERNAL_SERVER_ERROR,
            CloseCode::INTERNAL_ERROR,
            CloseCode::PING_FAILED,
            CloseCode::HANDSHAKE_FAILED,
            CloseCode::HANDSHAKE_REJECTED,
            CloseCode::DISCONNECT_TIMEOUT,
            CloseCode::DISPOSED,
            CloseCode::SLOW_CONSUMER,
            CloseCode::ROOM_CLOSED,
            CloseCode::UNKNOWN_ERROR,
        ];
        for code in known {
            assert!(
                CLOSE_CODES.iter().any(|(c, _)| *c == code.as_u16()),
                "{code} has no label"
            );
        }
        for (code, label) in CLOSE_CODES {
            assert_eq!(label, code.to_string());
        }
    }
}
