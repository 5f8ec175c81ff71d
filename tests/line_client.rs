//! Line's published JavaScript client (`line-socket` from npm, `client-node`) against a
//! roomwire server: the compatibility promise of docs/PROTOCOL.md, checked with the real thing.
//!
//! Needs Node.js and `npm ci --prefix tests/js` (the README's test command does both).

#[path = "common/line_suite.rs"]
mod line_suite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_published_client_works_unchanged() {
    line_suite::run("ws", &[], |server, listener| server.serve(listener)).await;
}
