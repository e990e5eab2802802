//! Runs a server on a socket and db file given as arguments (manual testing).
use ovsdb::server::{Limits, SchemaSource, Server, ServerConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(sock), Some(db)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: serve SOCKET DBFILE");
        std::process::exit(2);
    };
    let _h = Server::start(ServerConfig {
        schema: SchemaSource::Vswitch,
        db_file: db.into(),
        unix_socket: sock.into(),
        socket_mode: 0o660,
        tcp: None,
        limits: Limits::default(),
    })
    .unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    loop {
        std::thread::park();
    }
}
