#!/usr/bin/python3
"""Writes the seed corpus under fuzz/corpus/ (run from anywhere; output is committed).

ovsdb:  every request in ovsdb-server's jsonrpc debug log of real ovs-vsctl/ovs-vswitchd traffic
        (../shared/reference/ovs-vsctl-jsonrpc-sample.txt by default), one JSON-RPC message per
        file, plus each connection's requests back to back as one stream. The libvirt reference
        file holds ovs-vsctl argv, not JSON; its effect is already in the log (add-port tag=10).
frames: literal frames (untagged ARP, 802.1Q, priority tag, double tag, BPDU, runt) in the
        target's record format: settings byte, then [ctl, len, bytes...] records.
config: examples/*.toml (but zones*) and small files for the VLAN modes and the error paths.
ovsdb_ops: choice bytes for the generated-operations target.
zones:  examples/zones*.toml, one file using every feature, one with many errors at once.
"""
import json
import pathlib
import re
import sys

FUZZ = pathlib.Path(__file__).resolve().parent.parent
REPO = FUZZ.parent
SAMPLE = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else \
    REPO.parent / "shared/reference/ovs-vsctl-jsonrpc-sample.txt"
LINE = re.compile(r'^(unix#\d+): received request, method="([^"]+)", params=(.*), id=(\S+)$')


def write(target, name, data):
    d = FUZZ / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


ROOT = ["uuid", "48575afc-9db1-4a08-b6cc-f310e2fc1651"]
# Methods and ops the sample does not show: monitor v1 with a condition-less select, lock
# traffic, mutate of a map, delete, a weak reference, an index clash, a wait that must fail.
EXTRA_OVSDB = {
    "extra-lifecycle.json": [
        {"method": "monitor", "params": ["Open_vSwitch", "m1", {"Bridge": {"columns": ["name", "ports"]},
                                                                "Interface": [{"select": {"initial": False}}]}],
         "id": 1},
        {"method": "transact", "params": ["Open_vSwitch",
            {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": "br0", "ports": ["named-uuid", "p"]}},
            {"op": "insert", "table": "Port", "uuid-name": "p", "row": {"name": "p0", "tag": 10, "interfaces": ["named-uuid", "i"]}},
            {"op": "insert", "table": "Interface", "uuid-name": "i", "row": {"name": "p0", "type": "internal"}},
            {"op": "mutate", "table": "Open_vSwitch", "where": [["_uuid", "==", ROOT]],
             "mutations": [["bridges", "insert", ["set", [["named-uuid", "b"]]]], ["next_cfg", "+=", 1]]},
            {"op": "mutate", "table": "Interface", "where": [["name", "==", "p0"]],
             "mutations": [["external_ids", "insert", ["map", [["iface-id", "x"]]]]]}], "id": 2},
        {"method": "transact", "params": ["Open_vSwitch",
            {"op": "insert", "table": "Bridge", "row": {"name": "br0"}}], "id": 3},
        {"method": "transact", "params": ["Open_vSwitch",
            {"op": "wait", "table": "Bridge", "where": [], "columns": ["name"], "until": "==", "rows": []}], "id": 4},
        {"method": "lock", "params": ["l1"], "id": 5},
        {"method": "steal", "params": ["l1"], "id": 6},
        {"method": "transact", "params": ["Open_vSwitch", {"op": "assert", "lock": "l1"},
            {"op": "update", "table": "Open_vSwitch", "where": [], "row": {"bridges": ["set", []]}}], "id": 7},
        {"method": "monitor_cancel", "params": ["m1"], "id": 8},
        {"method": "unlock", "params": ["l1"], "id": 9},
        {"method": "monitor_cond", "params": ["Open_vSwitch", "m2", {"Port": [{"where": [["tag", ">", 5]]}]}],
         "id": 10},
        {"method": "transact", "params": ["Open_vSwitch", {"op": "delete", "table": "Port", "where": []},
            {"op": "abort"}], "id": 11},
    ],
}


def ovsdb_seeds():
    streams = {}
    n = 0
    for line in SAMPLE.read_text().splitlines():
        m = LINE.match(line)
        if not m:
            continue
        conn, method, params, rid = m.groups()
        try:
            msg = {"method": method, "params": json.loads(params), "id": json.loads(rid)}
        except json.JSONDecodeError:
            print(f"skipping a truncated {method} on {conn}", file=sys.stderr)
            continue
        text = json.dumps(msg, separators=(",", ":"))
        n += 1
        write("ovsdb", f"msg-{n:03}-{method.replace('/', '-')}.json", text)
        streams.setdefault(conn, []).append(text)
    for conn, msgs in streams.items():
        write("ovsdb", f"conn-{conn.replace('#', '')}.json", "\n".join(msgs) + "\n")
    for name, msgs in EXTRA_OVSDB.items():
        write("ovsdb", name, "\n".join(json.dumps(m, separators=(",", ":")) for m in msgs) + "\n")
    print(f"ovsdb: {n} messages, {len(streams)} connections", file=sys.stderr)


def frame(dst, src, ethertype, payload, tags=()):
    b = bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", ""))
    for tci in tags:
        b += bytes([0x81, 0x00, tci >> 8, tci & 0xff])
    return b + ethertype.to_bytes(2, "big") + payload


def record(slot, f, advance=0, mask=None):
    ctl = slot | (advance << 4) | (0x80 if mask is not None else 0)
    head = bytes([ctl]) + (bytes([mask]) if mask is not None else b"")
    return head + bytes([len(f)]) + f


def frame_seeds():
    a, b, bc = "52:54:00:00:00:0a", "52:54:00:00:00:0b", "ff:ff:ff:ff:ff:ff"
    arp = bytes.fromhex("0001080006040001") + bytes.fromhex(a.replace(":", "")) + bytes([198, 18, 0, 1]) \
        + bytes(6) + bytes([198, 18, 0, 2])
    ipv4 = bytes.fromhex("4500001c000000004011") + bytes(10) + bytes(8)
    seeds = {
        "arp-untagged-access": record(0, frame(bc, a, 0x0806, arp)),
        "tagged-vlan10-trunk": record(2, frame(bc, b, 0x0800, ipv4, [0x000a])),
        "priority-tag-access": record(1, frame(bc, a, 0x0800, ipv4, [0xa000])),
        "double-tag-trunkall": record(3, frame(bc, b, 0x0800, ipv4, [0x2014, 0x000a])),
        "bpdu": record(0, frame("01:80:c2:00:00:00", a, 0x0026, bytes(20))),
        "runt": record(0, bytes(10)) + record(2, frame(bc, a, 0x8100, b"")[:16]),
        # a learns on slot 0, b answers from slot 6 (unicast to a), then a reconfigure drops slot 6.
        "learn-reply-reconfigure": record(0, frame(bc, a, 0x0806, arp))
        + record(6, frame(a, b, 0x0800, ipv4), advance=1)
        + record(0, frame(b, a, 0x0800, ipv4), advance=1, mask=0x3f),
        "native-modes": record(4, frame(bc, a, 0x0800, ipv4)) + record(5, frame(bc, b, 0x0800, ipv4, [0x001e])),
    }
    for name, body in seeds.items():
        write("frames", f"{name}.bin", bytes([0x0e]) + body)


CONFIGS = {
    "native.toml": '[[bridge]]\nname = "br0"\nforward-bpdu = true\n[[bridge.port]]\nname = "p1"\n'
                   'vlan_mode = "native-untagged"\ntag = 42\ntrunks = [42, 43]\n[[bridge.port]]\n'
                   'name = "p2"\ntype = "tap"\nvlan_mode = "native-tagged"\ntag = 7\n',
    "bad-tag.toml": '[[bridge]]\nname = "br0"\n[[bridge.port]]\nname = "p1"\ntag = 5000\n',
    "two-bridges.toml": '[[bridge]]\nname = "a"\nmac-table-size = 10\n[[bridge]]\nname = "b"\n'
                        'mac-aging-time = 1\n[[bridge.port]]\nname = "a"\n',
}


def config_seeds():
    for p in sorted((REPO / "examples").glob("*.toml")):
        if not p.name.startswith("zones"):
            write("config", p.name, p.read_bytes())
    for name, text in CONFIGS.items():
        write("config", name, text)


ZONES = {
    "vm-and-uplink.toml": '[naming]\nbridge = "br-{zone}"\n[[zone]]\nname = "a"\nuplink = { nic = "eth1" }\n'
                          '[[zone.portgroup]]\nname = "p"\nvlan = 10\ndefault = true\n[[zone.portgroup]]\n'
                          'name = "q"\nvlan = 20\n[[zone]]\nname = "b"\nbridge = "br-x"\n'
                          '[[vm]]\nname = "v"\nzone = "a"\nportgroup = "q"\nmac = "52:54:00:00:00:01"\n',
    "errors.toml": '[naming]\nbridge = "br-{name}"\n[[zone]]\nname = "Intra_net"\n[[zone]]\nname = "engineering-lab"\n'
                   '[[zone.portgroup]]\nname = "p"\nvlan = 5000\n[[vm]]\nname = "v"\nzone = "c"\n'
                   'mac = "01:00:5e:00:00:01"\n',
}


def zones_seeds():
    for p in sorted((REPO / "examples").glob("zones*.toml")):
        write("zones", p.name, p.read_bytes())
    for name, text in ZONES.items():
        write("zones", name, text)


def ovsdb_ops_seeds():
    """Choice bytes, not text: a fixed pseudo-random stream (reproducible) plus all-zero."""
    x = 0x2545F491
    for i in range(8):
        b = bytearray()
        for _ in range(48 + 16 * i):
            x = (x * 1103515245 + 12345) & 0x7fffffff
            b.append(x >> 16 & 0xff)
        write("ovsdb_ops", f"random-{i}.bin", bytes(b))
    write("ovsdb_ops", "zeros.bin", bytes(64))


def write_dict(target, words):
    """An AFL dictionary (-x): tokens that byte mutations rarely hit by chance."""
    d = FUZZ / "dict"
    d.mkdir(exist_ok=True)
    def quote(w):  # AFL knows only \\, \" and \xNN
        return '"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}"
                             for b in w.encode()) + '"'
    lines = sorted({quote(w) for w in words})
    (d / f"{target}.dict").write_text("".join(f"{target}_{i}={w}\n" for i, w in enumerate(lines)))


JSON_WORDS = ['{"', '":', '",', '"}', '["', '"]', "[]", "{}", "null", "true", "false", "-1", "1e999",
              "0.5", "\\u0000", "9223372036854775807"]
OVSDB_WORDS = ["method", "params", "id", "transact", "monitor", "monitor_cond", "monitor_cond_since",
               "monitor_cancel", "lock", "steal", "unlock", "op", "insert", "select", "update", "mutate",
               "delete", "wait", "commit", "abort", "comment", "assert", "table", "where", "row", "rows",
               "columns", "mutations", "until", "timeout", "uuid", "uuid-name", "named-uuid", "set", "map",
               "durable", "initial", "modify", "_uuid", "_version", "==", "!=", "<", "<=", ">", ">=",
               "includes", "excludes", "+=", "-=", "*=", "/=", "%=", ROOT[1]]
TOML_WORDS = ["[[", "]]", " = ", '"', "\n", "true", "false", "[", "]", "{", "}", "#", "'''", '"""']


def dicts():
    schema = json.loads((REPO / "crates/ovsdb/schema/vswitch.ovsschema").read_text())
    names = set()
    for t, ts in schema["tables"].items():
        names.add(t)
        names.update(ts["columns"])
    write_dict("ovsdb", JSON_WORDS + OVSDB_WORDS + sorted(names))
    write_dict("config", TOML_WORDS + ["[[bridge]]", "[[bridge.port]]", "name", "type", "tag", "trunks",
                                       "vlan_mode", "mac-aging-time", "mac-table-size", "forward-bpdu",
                                       "system", "tap", "internal", "access", "trunk", "native-tagged",
                                       "native-untagged", "4095", "4096"])
    write_dict("zones", TOML_WORDS + ["[naming]", "[[zone]]", "[[zone.portgroup]]", "[[vm]]", "name",
                                      "description", "bridge", "uplink", "nic", "portgroup", "vlan",
                                      "default", "zone", "mac", "{zone}", "52:54:00:00:00:01", "4094"])


ovsdb_seeds()
frame_seeds()
config_seeds()
zones_seeds()
ovsdb_ops_seeds()
dicts()
