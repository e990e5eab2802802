use super::*;

// Keys made with `wg genkey` / `wg pubkey` for these tests only.
const PRIV: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const PUB: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

fn good() -> String {
    format!(
        "# office VPN\n[Interface]\nPrivateKey = {PRIV}\nAddress = 198.18.9.2/32, fd00::2/128\n\
         DNS = 198.18.9.53, corp.example, fd00::53\nMTU = 1420\nPostUp = iptables -A FORWARD\n\n\
         [Peer]\nPublicKey = {PUB}\nPresharedKey = {PUB}\nEndpoint = 198.19.0.1:51820\n\
         AllowedIPs = 198.18.9.0/24\nAllowedIPs = 198.18.10.0/24 # second line adds\n\
         PersistentKeepalive = 25\n"
    )
}

fn err(text: &str) -> WgConfError {
    parse(text, "office.conf").unwrap_err()
}

#[test]
fn a_full_file_parses() {
    let c = parse(&good(), "office.conf").unwrap();
    assert_eq!(c.interface.private_key[0], 0xc8);
    assert_eq!(c.interface.addresses.len(), 2);
    let dns: Vec<IpAddr> = ["198.18.9.53", "fd00::53"].iter().map(|a| a.parse().unwrap()).collect();
    assert_eq!(c.interface.dns, dns, "both families kept (IPv6 for the RAs), the search domain not");
    assert_eq!(c.interface.mtu, Some(1420));
    assert_eq!(c.peer.endpoint.as_deref(), Some("198.19.0.1:51820"));
    assert_eq!(c.peer.allowed_ips.len(), 2);
    assert_eq!(c.peer.persistent_keepalive, Some(25));
    assert!(c.peer.preshared_key.is_some());
    assert_eq!(c.ignored, vec![(7, "postup".to_string())]);
    assert!(!format!("{:?}", c.interface).contains("private_key"), "keys stay out of logs");
}

#[test]
fn errors_name_file_and_line() {
    let e = err(&good().replace("MTU = 1420", "MTU = big"));
    assert_eq!(e.line, 6);
    assert_eq!(e.to_string(), "office.conf:6: MTU \"big\" must be a number in 576..=65535");
    let e = err(&good().replace(&format!("PublicKey = {PUB}\nPresh"), "PublicKey = abc\nPresh"));
    assert_eq!(e.line, 10, "{e}");
    assert!(e.message.contains("PublicKey is not base64"), "{e}");
    let e = err(&good().replace("Endpoint = 198.19.0.1:51820", "Endpoint = 198.19.0.1"));
    assert!(e.message.contains("host:port"), "{e}");
    let e = err(&good().replace("[Peer]", "[Pear]"));
    assert_eq!((e.line, e.message.as_str()), (9, "unknown section [Pear]"));
    let e = err(&good().replace("MTU", "Colour"));
    assert!(e.message.contains("unknown key \"colour\""), "{e}");
    let e = err(&format!("{}[Peer]\nPublicKey = {PUB}\n", good()));
    assert!(e.message.contains("only one [Peer]"), "{e}");
    let e = err("PrivateKey = x\n");
    assert_eq!(e.line, 1);
    let e = err("[Interface]\nPrivateKey = AAAA\n");
    assert!(e.message.contains("3 bytes"), "{e}");
}

#[test]
fn missing_pieces_are_named() {
    let e = err(&good().replace(&format!("PrivateKey = {PRIV}\n"), ""));
    assert_eq!(e.to_string(), "office.conf: [Interface] has no PrivateKey");
    let e = err(&good().replace("Endpoint = 198.19.0.1:51820\n", ""));
    assert!(e.message.contains("no Endpoint"), "{e}");
    let no_allowed = good().replace("AllowedIPs = 198.18.9.0/24\n", "");
    let no_allowed = no_allowed.replace("AllowedIPs = 198.18.10.0/24 # second line adds\n", "");
    assert!(err(&no_allowed).message.contains("no AllowedIPs"));
    assert!(err("[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n")
        .message
        .contains("no [Peer]"));
}

#[test]
fn endpoints() {
    assert!(endpoint("[fd00::1]:51820").is_ok());
    assert!(endpoint("vpn.example.com:51820").is_ok());
    assert!(endpoint("fd00::1:51820").is_err(), "a bare IPv6 endpoint is ambiguous");
    assert!(endpoint("host:0").is_err());
    assert!(endpoint(":51820").is_err());
}

#[test]
fn a_readable_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("office.conf");
    std::fs::write(&path, good()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = load(&path).unwrap_err();
    assert!(e.message.contains("mode 0644 lets group or others read the private key"), "{e}");
    assert!(e.to_string().starts_with(&format!("{}: mode", path.display())), "{e}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(load(&path).is_err(), "group-readable is refused too");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(load(&path).unwrap(), parse(&good(), "x").unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(load(&path).is_ok(), "stricter than 0600 is fine");
    assert!(load(&dir.path().join("missing.conf")).unwrap_err().message.starts_with("cannot read"));
}
