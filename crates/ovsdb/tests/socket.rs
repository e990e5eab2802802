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

/// Runs `f` on a thread and fails the test if it has not returned within 10 s (the thread is
/// left behind; the test process ends with the test).
fn within_10s(what: &str, f: impl FnOnce() + Send + 'static) {
    let t = std::thread::spawn(f);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !t.is_finished() {
        assert!(std::time::Instant::now() < deadline, "{what} did not return within 10 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    t.join().expect("no panic");
}

#[test]
fn shutdown_returns_after_the_socket_directory_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let sock_dir = dir.path().join("run");
    std::fs::create_dir(&sock_dir).unwrap();
    let mut cfg = config(dir.path(), "a.db");
    cfg.unix_socket = sock_dir.join("db.sock");
    let server = Server::start(cfg).expect("server");
    // Clients connected at the time, one of them mid-message, must not hold shutdown up either.
    let idle = std::os::unix::net::UnixStream::connect(sock_dir.join("db.sock")).unwrap();
    let mut half = std::os::unix::net::UnixStream::connect(sock_dir.join("db.sock")).unwrap();
    std::io::Write::write_all(&mut half, b"{\"method\":\"echo\",\"par").unwrap();
    std::fs::remove_dir_all(&sock_dir).unwrap();
    within_10s("shutdown", move || server.shutdown());
    // The clients were disconnected: both read EOF.
    for mut c in [idle, half] {
        c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 16];
        // EOF, or a reset for the one whose unread bytes were discarded.
        match std::io::Read::read(&mut c, &mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("client still connected: {other:?}"),
        }
    }
}

#[test]
fn shutdown_leaves_a_socket_that_is_no_longer_ours() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path(), "a.db")).expect("server");
    // Someone replaced the socket file (a newer server): ours must not delete theirs.
    std::fs::remove_file(dir.path().join("db.sock")).unwrap();
    let theirs = std::os::unix::net::UnixListener::bind(dir.path().join("db.sock")).unwrap();
    within_10s("shutdown", move || server.shutdown());
    assert!(dir.path().join("db.sock").exists(), "the other server's socket was removed");
    drop(theirs);
}

#[test]
fn tcp_listener_serves_on_the_same_loop() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "a.db");
    cfg.tcp = Some("127.0.0.1:0".parse().unwrap());
    let server = Server::start(cfg).expect("server");
    let addr = server.tcp_addr().expect("bound address");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut c, br#"{"method":"echo","params":["tcp"],"id":1}"#).unwrap();
    let mut buf = [0u8; 256];
    let n = std::io::Read::read(&mut c, &mut buf).unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&buf[..n]).expect("one reply");
    assert_eq!(reply["result"], serde_json::json!(["tcp"]));
    assert_eq!(server.connections(), 1);
    within_10s("shutdown", move || server.shutdown());
}
