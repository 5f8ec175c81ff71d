//! How the client opens its socket: `ws://` over TCP, `wss://` over TLS (feature `tls`,
//! rustls). Without the feature a `wss://` URL fails with [`ConnectError::TlsNotEnabled`] before
//! anything is dialled.

#[cfg(feature = "tls")]
use std::sync::{Arc, OnceLock};

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::ConnectError;

/// The TLS configuration every connection of one client uses, its reconnects too: the one
/// given to the builder, or (the default) none, for [`default_config`].
#[derive(Clone, Default)]
pub(super) struct Tls {
    #[cfg(feature = "tls")]
    config: Option<Arc<rustls::ClientConfig>>,
}

impl Tls {
    /// Connections use `config`.
    #[cfg(feature = "tls")]
    pub(super) fn new(config: Arc<rustls::ClientConfig>) -> Self {
        Tls {
            config: Some(config),
        }
    }

    /// Opens a WebSocket to `url`: TCP (TCP_NODELAY), then TLS for `wss://`, then the HTTP
    /// upgrade.
    ///
    /// # Errors
    /// [`ConnectError::TlsNotEnabled`] for a `wss://` URL without the `tls` feature;
    /// [`ConnectError::WebSocket`] for everything tungstenite reports (the URL, the TCP connection,
    /// the TLS handshake, the upgrade).
    pub(super) async fn connect(
        &self,
        url: &str,
        ws_config: WebSocketConfig,
    ) -> Result<(WebSocketStream<MaybeTlsStream<TcpStream>>, Response), ConnectError> {
        #[cfg(feature = "tls")]
        let connected = tokio_tungstenite::connect_async_tls_with_config(
            url,
            Some(ws_config),
            true,
            Some(tokio_tungstenite::Connector::Rustls(
                self.config.clone().unwrap_or_else(default_config),
            )),
        )
        .await;
        #[cfg(not(feature = "tls"))]
        let connected = {
            // tungstenite would dial first and then fail with "TLS support not compiled in",
            // which does not say what to do.
            if is_wss(url) {
                return Err(ConnectError::TlsNotEnabled);
            }
            tokio_tungstenite::connect_async_with_config(url, Some(ws_config), true).await
        };
        connected.map_err(ConnectError::WebSocket)
    }
}

/// Whether tungstenite reads `url` as one that needs TLS (`wss://`).
#[cfg(any(test, not(feature = "tls")))]
fn is_wss(url: &str) -> bool {
    use tokio_tungstenite::tungstenite::client::uri_mode;
    use tokio_tungstenite::tungstenite::http::Uri;
    use tokio_tungstenite::tungstenite::stream::Mode;

    url.parse::<Uri>()
        .is_ok_and(|uri| matches!(uri_mode(&uri), Ok(Mode::Tls)))
}

/// The configuration of a client given none: Mozilla's root certificates (the
/// `webpki-roots` crate) and rustls's ring provider, named here rather than taken from the
/// process default, which is ambiguous (and rustls panics) when another crate in the
/// application enables a second provider. Built once, shared by every such client.
#[cfg(feature = "tls")]
fn default_config() -> Arc<rustls::ClientConfig> {
    static DEFAULT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::is_wss;

    #[cfg(not(feature = "tls"))]
    #[tokio::test]
    async fn a_wss_url_without_the_tls_feature_fails_saying_to_enable_it() {
        let error = crate::client::Client::builder("wss://127.0.0.1:9")
            .no_reconnect()
            .connect()
            .await
            .expect_err("there is no TLS to connect with");
        assert!(
            matches!(error, crate::client::ConnectError::TlsNotEnabled),
            "{error:?}"
        );
        assert!(error.to_string().contains("`tls` feature"), "{error}");
    }

    #[test]
    fn wss_urls_are_told_from_ws_urls_as_tungstenite_reads_them() {
        assert!(is_wss("wss://example.com/socket"));
        assert!(is_wss("wss://127.0.0.1:8443"));
        assert!(!is_wss("ws://example.com"));
        assert!(!is_wss("http://example.com"));
        assert!(!is_wss("not a url"));
    }
}
