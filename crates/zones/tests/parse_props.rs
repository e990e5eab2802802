//! `zones::parse` takes untrusted text: whatever it is given, it returns a model or
//! diagnostics whose positions lie inside the text — it never panics.

use proptest::prelude::*;

const PIECES: &[&str] = &[
    "[[zone]]\n",
    "[[zone.portgroup]]\n",
    "[[vm]]\n",
    "[naming]\n",
    "name = \"a\"\n",
    "name = \"b-1\"\n",
    "name = \"Ä\"\n",
    "bridge = \"br-{zone}\"\n",
    "bridge = \"x{y}\"\n",
    "bridge = \"0123456789abcdefg\"\n",
    "vlan = 10\n",
    "vlan = -1\n",
    "vlan = 99999999999\n",
    "default = true\n",
    "default = 1\n",
    "uplink = { nic = \"eth1\" }\n",
    "uplink = { nic = \"\" }\n",
    "zone = \"a\"\n",
    "portgroup = \"p\"\n",
    "mac = \"52:54:00:00:00:01\"\n",
    "mac = \"ff:ff:ff:ff:ff:ff\"\n",
    "description = \"d\"\n",
    "nat = true\n",
    "dhcp = { range = [\"198.18.0.2\", \"198.18.0.9\"] }\n",
    "dhcp = { range = [\"x\"] }\n",
    "ip = \"198.18.0.5\"\n",
    "\u{feff}",
    "é",
    "\"",
    "[",
    "=",
    "\n",
];

fn positions_inside(text: &str, r: &Result<zones::Model, Vec<zones::Diagnostic>>) {
    if let Err(diags) = r {
        assert!(!diags.is_empty());
        let lines = text.split('\n').count();
        for d in diags {
            assert!(d.pos.line >= 1 && d.pos.line <= lines, "{d} outside {lines} lines");
            assert!(d.pos.col >= 1);
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let r = zones::parse(&text, "f");
        positions_inside(&text, &r);
    }

    #[test]
    fn shuffled_zone_file_pieces_never_panic(picks in proptest::collection::vec(0..PIECES.len(), 0..40)) {
        let text: String = picks.iter().map(|i| PIECES[*i]).collect();
        let r = zones::parse(&text, "f");
        positions_inside(&text, &r);
        if let Ok(m) = r {
            // A valid model always yields XML and desired rows without panicking either.
            let _ = zones::libvirt::files(&m, None);
            let _ = zones::desired::desired(&m);
        }
    }
}
