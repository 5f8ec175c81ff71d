//! The built-in listener's TLS (feature `tls`): the acceptor [`Serve::with_tls`] sets, and
//! [`TlsSocket`], an accepted stream that closes the way a TLS peer expects. Without the
//! feature, an acceptor that cannot exist.
//!
//! [`Serve::with_tls`]: crate::Serve::with_tls

#[cfg(feature = "tls")]
pub(crate) use with_tls::{Acceptor, TlsSocket};

/// Without the `tls` feature there is no TLS to accept.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
pub(crate) enum Acceptor {}

#[cfg(feature = "tls")]
mod with_tls {
    use std::io;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
    use tokio::net::TcpStream;
    use tokio_rustls::server::TlsStream;
    use tokio_util::task::TaskTracker;
    use tracing::Instrument;

    use crate::server::OpenSlot;

    pub(crate) type Acceptor = tokio_rustls::TlsAcceptor;

    /// An accepted TLS stream. The connection (or the HTTP answer, when there is no
    /// upgrade) reads and writes through it; dropped, it does not close its socket at once:
    /// a task the server tracks sends TLS's `close_notify`, then reads and discards what
    /// the peer still sends until the peer closes too, for at most the close timeout.
    ///
    /// Closing a socket with unread input resets it, and a TLS peer's last bytes usually
    /// come after the WebSocket close handshake is over: its own `close_notify`, which
    /// Node's `ws` (under Line's client) sends right after its close frame. The reset then
    /// reaches the peer as an error — `ws` reports 1006, whatever close frame it had read —
    /// or destroys what was sent last before the peer reads it. A plain TCP peer's FIN
    /// carries no data, so plain sockets need none of this.
    pub(crate) struct TlsSocket {
        /// Taken only by `drop`.
        stream: Option<TlsStream<TcpStream>>,
        /// The peer's side has ended: nothing is left to read.
        input_ended: bool,
        tracker: TaskTracker,
        close_timeout: Duration,
        /// The connection's slot: given back once the socket is really closed, so
        /// `max_connections` counts a socket until its close task ends.
        slot: Option<Arc<OpenSlot>>,
    }

    impl TlsSocket {
        /// `stream`, whose close, once it is dropped, runs in a task of `tracker` for at
        /// most `close_timeout`.
        pub(crate) fn new(
            stream: TlsStream<TcpStream>,
            tracker: TaskTracker,
            close_timeout: Duration,
            slot: Arc<OpenSlot>,
        ) -> Self {
            TlsSocket {
                stream: Some(stream),
                input_ended: false,
                tracker,
                close_timeout,
                slot: Some(slot),
            }
        }

        fn stream(&mut self) -> Pin<&mut TlsStream<TcpStream>> {
            Pin::new(self.stream.as_mut().expect("taken only by drop"))
        }
    }

    impl AsyncRead for TlsSocket {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let before = buf.filled().len();
            let read = this.stream().poll_read(cx, buf);
            match &read {
                Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                    this.input_ended = true;
                }
                Poll::Ready(Err(_)) => this.input_ended = true,
                _ => {}
            }
            read
        }
    }

    impl AsyncWrite for TlsSocket {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().stream().poll_write(cx, buf)
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().stream().poll_write_vectored(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            self.stream
                .as_ref()
                .is_some_and(AsyncWrite::is_write_vectored)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().stream().poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().stream().poll_shutdown(cx)
        }
    }

    impl Drop for TlsSocket {
        fn drop(&mut self) {
            let Some(mut stream) = self.stream.take() else {
                return;
            };
            // Outside a runtime (it is shutting down) the socket just closes.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let input_ended = self.input_ended;
            let slot = self.slot.take();
            let close = async move {
                let _slot = slot;
                // close_notify, then our half of the TCP connection (a second shutdown,
                // after the driver's own, sends nothing more).
                if stream.shutdown().await.is_err() || input_ended {
                    return;
                }
                let mut discard = [0u8; 1024];
                while let Ok(1..) = stream.read(&mut discard).await {}
            };
            let timeout = self.close_timeout;
            self.tracker.spawn_on(
                async move {
                    if tokio::time::timeout(timeout, close).await.is_err() {
                        tracing::debug!("the TLS peer did not close within the close timeout");
                    }
                }
                .instrument(tracing::Span::current()),
                &runtime,
            );
        }
    }
}
