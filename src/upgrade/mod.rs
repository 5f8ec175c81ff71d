//! The front door: the HTTP request a WebSocket connection arrives with ([`UpgradeRequest`]),
//! and what the application's [upgrade filter](crate::Server::on_upgrade) uses to decide on
//! it ([`Deny`], [`TrustedProxies`], [`AllowedOrigins`]).
//!
//! Every way in — the built-in listener ([`Server::listen`](crate::Server::listen)), any
//! stream given to [`Server::serve_connection`](crate::Server::serve_connection), a hyper
//! or axum app calling [`Server::handle_upgrade`](crate::Server::handle_upgrade) — goes
//! through the same decision: the path (built-in listener and `serve_connection`), the
//! server's state and
//! connection limit, the WebSocket headers, then the upgrade filter. Only an allowed upgrade
//! becomes a connection; everything else is answered with a status and a body that says
//! why, and the socket is closed.

mod origin;
mod proxy;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http::{
    header, request, Extensions, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri, Version,
};

pub use origin::AllowedOrigins;
pub use proxy::{ForwardedHeader, InvalidProxy, TrustedProxies};

use crate::connection::clock::Instant;
use crate::metrics::{self, Refused};
use crate::server::ServerShared;

/// What is known of a connection's peer before any HTTP is read: given to
/// [`Server::serve_connection`](crate::Server::serve_connection) and
/// [`Server::handle_upgrade`](crate::Server::handle_upgrade). A [`SocketAddr`] converts
/// into one; [`ConnectionInfo::default`] knows nothing (a Unix socket, an in-memory pipe).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The peer's socket address, when the transport has one.
    pub remote_addr: Option<SocketAddr>,
}

impl ConnectionInfo {
    /// A peer at `remote_addr`.
    pub fn new(remote_addr: SocketAddr) -> Self {
        ConnectionInfo {
            remote_addr: Some(remote_addr),
        }
    }
}

impl From<SocketAddr> for ConnectionInfo {
    fn from(addr: SocketAddr) -> Self {
        ConnectionInfo::new(addr)
    }
}

impl From<Option<SocketAddr>> for ConnectionInfo {
    fn from(remote_addr: Option<SocketAddr>) -> Self {
        ConnectionInfo { remote_addr }
    }
}

/// The HTTP request that asks for a WebSocket upgrade: what the
/// [upgrade filter](crate::Server::on_upgrade) decides on, and what the
/// [`Handshake`](crate::Handshake) can read later. Cheap to clone (the parts are shared).
///
/// Its [`extensions`](Self::extensions) are the request's own: behind axum, what a
/// middleware put there (an authenticated user, say) reaches the upgrade filter and the
/// handshake.
#[derive(Clone)]
pub struct UpgradeRequest {
    inner: Arc<RequestParts>,
}

struct RequestParts {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
    remote_addr: Option<SocketAddr>,
}

impl UpgradeRequest {
    pub(crate) fn new(parts: request::Parts, remote_addr: Option<SocketAddr>) -> Self {
        UpgradeRequest {
            inner: Arc::new(RequestParts {
                method: parts.method,
                uri: parts.uri,
                version: parts.version,
                headers: parts.headers,
                extensions: parts.extensions,
                remote_addr,
            }),
        }
    }

    /// A request that says nothing (for connections made without HTTP: tests, benchmarks).
    pub(crate) fn empty(remote_addr: Option<SocketAddr>) -> Self {
        let (parts, ()) = request::Request::new(()).into_parts();
        UpgradeRequest::new(parts, remote_addr)
    }

    /// The request's method (`GET` for every WebSocket upgrade).
    pub fn method(&self) -> &Method {
        &self.inner.method
    }

    /// The request's URI: a path and query (`/ws?room=lobby`), or an absolute URI when the
    /// client sent one.
    pub fn uri(&self) -> &Uri {
        &self.inner.uri
    }

    /// The path of the request (`/` when the client asked for the root).
    pub fn path(&self) -> &str {
        self.inner.uri.path()
    }

    /// The query string, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.inner.uri.query()
    }

    /// The request's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.inner.headers
    }

    /// The request's extensions (what the HTTP server or its middleware attached).
    pub fn extensions(&self) -> &Extensions {
        &self.inner.extensions
    }

    /// The address of the socket the request came from: the client's, or the proxy's in
    /// front of it (see [`client_ip`](Self::client_ip)). `None` when the transport has no
    /// address (a Unix socket) or the server was not told it.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr
    }

    /// The `Origin` header, if the client sent one (browsers always do).
    pub fn origin(&self) -> Option<&str> {
        self.inner.headers.get(header::ORIGIN)?.to_str().ok()
    }

    /// The client's IP address, read through the proxies the application trusts.
    ///
    /// When the socket's peer is one of `trusted`, the header they write (`X-Forwarded-For`,
    /// or `Forwarded` if [so configured](TrustedProxies::header); never the other) is read
    /// from the nearest hop outwards, and the first address that is not a trusted proxy is
    /// the client. A peer that is not trusted is the client itself, whatever the headers say:
    /// anyone can write them.
    ///
    /// `None` when the peer's address is unknown (a Unix socket), or a hop that has to be
    /// read cannot be (`unknown`, an obfuscated identifier, a `Forwarded` element without
    /// `for=`, garbage): treat `None` as "refuse", not "allow".
    ///
    /// ```
    /// use roomwire::upgrade::TrustedProxies;
    ///
    /// let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
    /// # let _ = proxies;
    /// // In the upgrade filter: `req.client_ip(&proxies)`.
    /// ```
    pub fn client_ip(&self, trusted: &TrustedProxies) -> Option<IpAddr> {
        proxy::client_ip(self.remote_addr()?.ip(), &self.inner.headers, trusted)
    }
}

impl fmt::Debug for UpgradeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeRequest")
            .field("method", &self.inner.method)
            .field("uri", &self.inner.uri)
            .field("version", &self.inner.version)
            .field("headers", &self.inner.headers)
            .field("remote_addr", &self.inner.remote_addr)
            .finish_non_exhaustive()
    }
}

/// The [upgrade filter](crate::Server::on_upgrade)'s refusal: the HTTP status and body the
/// client gets instead of a WebSocket.
///
/// ```
/// use roomwire::upgrade::Deny;
/// use roomwire::http::StatusCode;
///
/// let deny = Deny::new(StatusCode::TOO_MANY_REQUESTS, "slow down");
/// assert_eq!(deny.status(), StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(Deny::forbidden("banned").status(), StatusCode::FORBIDDEN);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    status: StatusCode,
    body: String,
}

impl Deny {
    /// A refusal with `status` and a plain-text `body`. A status that is not an error (below
    /// 400) is sent as 403 Forbidden, and logged: a refusal must not look like success.
    pub fn new(status: StatusCode, body: impl Into<String>) -> Self {
        let status = if status.as_u16() < 400 {
            tracing::warn!(%status, "an upgrade refusal needs an error status; sending 403");
            StatusCode::FORBIDDEN
        } else {
            status
        };
        Deny {
            status,
            body: body.into(),
        }
    }

    /// 403 Forbidden with `body`.
    pub fn forbidden(body: impl Into<String>) -> Self {
        Deny::new(StatusCode::FORBIDDEN, body)
    }

    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body the client gets.
    pub fn body(&self) -> &str {
        &self.body
    }

    pub(crate) fn into_response(self) -> Response<String> {
        plain(self.status, self.body)
    }
}

impl fmt::Display for Deny {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.body)
    }
}

impl std::error::Error for Deny {}

/// What the front door decided.
pub(crate) enum Decision {
    /// Upgrade: send this 101 response, then the connection is the server's.
    Upgrade(Response<String>, UpgradeRequest),
    /// Answer with this response and close the socket.
    Answer(Response<String>),
}

/// Whether the server checks the request's path (the built-in HTTP handling does; a
/// router that mounted the server has routed by path already).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathCheck {
    Check,
    Routed,
}

/// Decides what becomes of an upgrade request: see the module docs. `over_limit` says
/// that taking this connection would pass `max_connections`.
pub(crate) async fn decide(
    shared: &ServerShared,
    parts: request::Parts,
    remote_addr: Option<SocketAddr>,
    path: PathCheck,
    over_limit: bool,
    deadline: Instant,
) -> Decision {
    if path == PathCheck::Check {
        if let Some(expected) = shared.config.path.as_deref() {
            if parts.uri.path() != expected {
                metrics::connection_refused(Refused::Path);
                return Decision::Answer(plain(
                    StatusCode::NOT_FOUND,
                    format!("no WebSocket endpoint at this path; connect to {expected}"),
                ));
            }
        }
    }
    if shared.is_closing() {
        return Decision::Answer(closing());
    }
    if over_limit {
        metrics::connection_refused(Refused::Limit);
        return Decision::Answer(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many connections; try again later",
        ));
    }
    let accept = match accept_key(&parts) {
        Ok(accept) => accept,
        Err(response) => {
            metrics::connection_refused(Refused::NotWebSocket);
            return Decision::Answer(response);
        }
    };
    let request = UpgradeRequest::new(parts, remote_addr);
    let filter = shared.hooks().on_upgrade.clone();
    if let Some(filter) = filter {
        // The filter's call and its future, both under the guard.
        let run = AssertUnwindSafe(async { filter(request.clone()).await }).catch_unwind();
        let verdict = tokio::select! {
            verdict = tokio::time::timeout_at(deadline, run) => verdict,
            () = shared.shutdown.cancelled() => return Decision::Answer(closing()),
        };
        match verdict {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(deny))) => {
                tracing::debug!(status = %deny.status, "upgrade denied by the filter");
                metrics::connection_refused(Refused::Denied);
                return Decision::Answer(deny.into_response());
            }
            Ok(Err(_)) => {
                tracing::error!("the upgrade filter panicked; answering 500");
                metrics::connection_refused(Refused::Failed);
                return Decision::Answer(plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the server could not decide on the upgrade",
                ));
            }
            Err(_) => {
                tracing::warn!(timeout = ?shared.config.upgrade_timeout, "the upgrade filter did not answer within the upgrade timeout; answering 503");
                metrics::connection_refused(Refused::Failed);
                return Decision::Answer(plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server could not decide on the upgrade in time",
                ));
            }
        }
        // The server may have begun to close while the filter ran.
        if shared.is_closing() {
            return Decision::Answer(closing());
        }
    }
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(String::new())
        .expect("a valid response");
    Decision::Upgrade(response, request)
}

/// The answer of a server that is closing (counted as refused).
fn closing() -> Response<String> {
    metrics::connection_refused(Refused::Closing);
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is shutting down",
    )
}

/// Checks that `parts` asks for a WebSocket (RFC 6455 §4.2.1); the `Sec-WebSocket-Accept`
/// value, or the response that says what is missing.
#[allow(clippy::result_large_err)] // the error is the response to send; it is sent at once
pub(crate) fn accept_key(parts: &request::Parts) -> Result<String, Response<String>> {
    let has_token = |name: header::HeaderName, token: &str| {
        parts.headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::UPGRADE, "websocket") {
        let mut response = plain(
            StatusCode::UPGRADE_REQUIRED,
            "this is a WebSocket endpoint: connect with a WebSocket client (the request has no `Upgrade: websocket` header)",
        );
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return Err(response);
    }
    if parts.method != Method::GET {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "a WebSocket upgrade is a GET request",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return Err(response);
    }
    if parts.version < Version::HTTP_11 {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade needs HTTP/1.1",
        ));
    }
    if !has_token(header::CONNECTION, "upgrade") {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            "the request's Connection header must include `Upgrade`",
        ));
    }
    let single = |name: header::HeaderName| {
        let mut values = parts.headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => Some(value),
            _ => None,
        }
    };
    if single(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        let mut response = plain(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version: this server speaks version 13 (RFC 6455), given once",
        );
        let headers = response.headers_mut();
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return Err(response);
    }
    match single(header::SEC_WEBSOCKET_KEY) {
        Some(key) if is_websocket_key(key.as_bytes()) => Ok(derive_accept_key(key.as_bytes())),
        _ => Err(plain(
            StatusCode::BAD_REQUEST,
            "the request needs one Sec-WebSocket-Key header: 16 bytes in base64",
        )),
    }
}

/// Whether `key` is 16 bytes in base64 (RFC 6455 §4.1): 22 base64 digits, the last with its
/// low four bits clear, then `==`.
fn is_websocket_key(key: &[u8]) -> bool {
    const DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let [digits @ .., b'=', b'='] = key else {
        return false;
    };
    digits.len() == 22
        && digits.iter().all(|d| DIGITS.contains(d))
        && DIGITS
            .iter()
            .position(|d| *d == digits[21])
            .is_some_and(|v| v & 0b1111 == 0)
}

/// A plain-text response that closes the connection after it.
pub(crate) fn plain(status: StatusCode, body: impl Into<String>) -> Response<String> {
    let mut body: String = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONNECTION, "close")
        .body(body)
        .expect("a valid response")
}
