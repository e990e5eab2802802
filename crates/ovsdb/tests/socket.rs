//! A second server never takes over a live server's socket; a stale one (no listener) is reused.

use ovsdb::server::{SchemaSource, Server, ServerConfig};

fn config(dir: &std::path::Path, db: &str) -> ServerConfig {
    ServerConfig {
        schema: SchemaSource::Vswitch,
        db_file: dir.join(db),
        unix_socket: dir.join("db.sock"),
        socket_mode: 0o600,
        tcp: None,
        limits: Default::default(),
    }
}

#[test]
fn live_socket_is_not_stolen_stale_one_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(config(dir.path(), "a.db")).expect("first server");
    let err = Server::start(config(dir.path(), "b.db")).err().expect("second server must refuse");
    assert!(err.to_string().contains("db.sock"), "{err}");
    // The first one still serves and still shuts down cleanly.
    assert!(std::os::unix::net::UnixStream::connect(dir.path().join("db.sock")).is_ok());
    first.shutdown();
    // A socket file nobody listens on is stale: a new server replaces it.
    let _l = std::os::unix::net::UnixListener::bind(dir.path().join("db.sock")).unwrap();
    drop(_l);
    let again = Server::start(config(dir.path(), "a.db")).expect("stale socket reused");
    again.shutdown();
}
