//! [`AllowedOrigins`]: the `Origin` allow-list for the upgrade filter.

use super::{Deny, UpgradeRequest};

/// The web origins whose pages may connect (`https://app.example.com`), checked in the
/// [upgrade filter](crate::Server::on_upgrade). A browser sends its page's origin with
/// every WebSocket upgrade, and a page from any site may open a WebSocket to any server:
/// this is what stops another site's page from using a visitor's cookies to connect.
///
/// A request without an `Origin` header does not come from a browser page (the Rust
/// client, Node.js, curl) and is allowed, unless [`require_origin`](Self::require_origin)
/// says otherwise. Origins compare as browsers write them: scheme, host and port, the
/// scheme and host in any case, a default port (`:443`, `:80`) the same as none. Do not list
/// `"null"`: it is the origin of every sandboxed iframe and `file://` page, from any site.
///
/// ```no_run
/// use roomwire::upgrade::AllowedOrigins;
///
/// let server = roomwire::Server::builder().build();
/// let origins = AllowedOrigins::new(["https://app.example.com", "http://localhost:3000"]);
/// server.on_upgrade(move |req| {
///     let verdict = origins.check(&req);
///     async move { verdict }
/// });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins {
    origins: Vec<String>,
    require: bool,
}

impl AllowedOrigins {
    /// Allows pages from these origins (`scheme://host[:port]`; a trailing `/` is ignored).
    pub fn new<I>(origins: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        AllowedOrigins {
            origins: origins.into_iter().map(|o| normalize(o.as_ref())).collect(),
            require: false,
        }
    }

    /// Also refuses requests without an `Origin` header (every client must be a page from
    /// an allowed origin). Defaults to `false`.
    pub fn require_origin(mut self, require: bool) -> Self {
        self.require = require;
        self
    }

    /// Whether `req` may connect.
    pub fn allows(&self, req: &UpgradeRequest) -> bool {
        match req
            .headers()
            .get(tokio_tungstenite::tungstenite::http::header::ORIGIN)
        {
            None => !self.require,
            Some(origin) => origin
                .to_str()
                .is_ok_and(|o| self.origins.contains(&normalize(o))),
        }
    }

    /// `Ok` when `req` may connect; otherwise 403 with a body that names the origin.
    ///
    /// # Errors
    /// [`Deny`] (403 Forbidden) for an origin not in the list, or a missing one when
    /// [required](Self::require_origin).
    pub fn check(&self, req: &UpgradeRequest) -> Result<(), Deny> {
        if self.allows(req) {
            return Ok(());
        }
        Err(match req.origin() {
            Some(origin) => Deny::forbidden(format!("origin {origin} may not connect")),
            None => Deny::forbidden("an Origin header is required"),
        })
    }
}

/// An origin as browsers send it: lower case, no trailing `/`, no default port (`:443` for
/// https, `:80` for http).
fn normalize(origin: &str) -> String {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
        if origin.starts_with(scheme) {
            if let Some(bare) = origin.strip_suffix(port) {
                return bare.to_owned();
            }
        }
    }
    origin
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn origins_compare_as_browsers_write_them() {
        assert_eq!(
            normalize("HTTPS://App.Example.com/"),
            "https://app.example.com"
        );
        assert_eq!(
            normalize("https://app.example.com:443"),
            "https://app.example.com"
        );
        assert_eq!(normalize("http://localhost:80"), "http://localhost");
        assert_eq!(normalize("http://localhost:3000"), "http://localhost:3000");
        assert_eq!(normalize("https://x.com:80"), "https://x.com:80");
    }
}
