#!/usr/bin/env python3
"""Writes the seeds of the `l3` and `wgquick` fuzz targets (run from fuzz/): a TCP SYN with an
MSS option, an ICMP echo, UDP, an oversize datagram, a TCP super-frame, a DHCP DISCOVER and
REQUEST, a lease file, ARP and frames for the gateway core; and wg-quick files."""
import base64
import struct


def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def ip4(src, dst, proto, payload, df=True, ttl=64):
    h = bytearray(struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 0x1234, 0x4000 if df else 0,
                              ttl, proto, 0, bytes(src), bytes(dst)))
    h[10:12] = struct.pack('!H', csum(bytes(h)))
    return bytes(h) + bytes(payload)


def l4csum(src, dst, proto, seg, off):
    pseudo = bytes(src) + bytes(dst) + struct.pack('!BBH', 0, proto, len(seg))
    seg = bytearray(seg)
    seg[off:off + 2] = struct.pack('!H', csum(pseudo + bytes(seg)))
    return bytes(seg)


vm, srv, gw = [198, 18, 0, 50], [198, 19, 0, 10], [198, 18, 0, 1]
mac = bytes([0x52, 0x54, 0, 0, 0, 0x42])
tcp = bytearray(struct.pack('!HHIIBBHHH', 40000, 443, 1000, 0, 7 << 4, 0x02, 65535, 0, 0))
tcp += bytes([2, 4, 0x05, 0xb4, 1, 3, 3, 7])
syn = ip4(vm, srv, 6, l4csum(vm, srv, 6, tcp, 16))
icmp = bytearray(struct.pack('!BBHHH', 8, 0, 0, 0x77, 1)) + b'pingpingpingping'
icmp[2:4] = struct.pack('!H', csum(bytes(icmp)))
echo = ip4(vm, srv, 1, icmp)
udp = bytearray(struct.pack('!HHHH', 5353, 53, 8 + 9, 0)) + b'hello dns'
udp = ip4(vm, srv, 17, l4csum(vm, srv, 17, udp, 6))
big_udp = bytearray(struct.pack('!HHHH', 5353, 53, 8 + 1400, 0)) + bytes(range(256)) * 5 + bytes(120)
big = ip4(vm, srv, 17, l4csum(vm, srv, 17, big_udp, 6), df=False)
big_df = ip4(vm, srv, 17, l4csum(vm, srv, 17, big_udp, 6), df=True)
t = bytearray(struct.pack('!HHIIBBHHH', 40000, 443, 5000, 1, 5 << 4, 0x18, 65535, 0, 0))
t += bytes(i % 251 for i in range(3000))
superf = ip4(vm, srv, 6, l4csum(vm, srv, 6, t, 16))

bootp = struct.pack('!BBBBIHH4s4s4s4s16s64s128s', 1, 1, 6, 0, 0x1234abcd, 0, 0x8000, b'\0' * 4, b'\0' * 4,
                    b'\0' * 4, b'\0' * 4, mac + b'\0' * 10, b'\0' * 64, b'\0' * 128)


def dhcp(opts):
    d = bootp + bytes([99, 130, 83, 99]) + bytes(opts) + bytes([255])
    z, b = [0, 0, 0, 0], [255] * 4
    u = bytearray(struct.pack('!HHHH', 68, 67, 8 + len(d), 0)) + d
    return ip4(z, b, 17, l4csum(z, b, 17, u, 6), df=False)


def eth(dst, src, et, p):
    return bytes(dst) + bytes(src) + struct.pack('!H', et) + p


def w(name, ctl_op, k, b):
    open('corpus/l3/' + name, 'wb').write(bytes([ctl_op | (k << 3)]) + b)


w('nat-tcp-syn.bin', 0, 0, syn)
w('nat-icmp-echo.bin', 0, 3, echo)
w('nat-udp.bin', 0, 0, udp)
w('clamp-tcp-syn.bin', 1, 8, syn)
w('icmp-too-big-df.bin', 2, 2, big_df)
w('frag-udp-1428.bin', 3, 10, big)
w('gso-tcp-3000.bin', 4, 28, superf)
w('dhcp-discover.bin', 5, 1, dhcp([53, 1, 1, 55, 4, 1, 3, 6, 26]))
w('dhcp-request.bin', 5, 2, dhcp([53, 1, 3, 50, 4, 198, 18, 0, 100, 54, 4, 198, 18, 0, 1]))
lease = (b'{"version":1,"leases":[{"mac":"52:54:00:00:00:42","ip":"198.18.0.100","expires":1700000600},'
         b'{"mac":"52:54:00:00:00:09","ip":"198.18.0.9","expires":1700000300}]}')
w('dhcp-restore.bin', 6, 0, lease)
gwmac = [2, 0, 0, 0, 0, 1]
arp = struct.pack('!HHBBH6s4s6s4s', 1, 0x800, 6, 4, 1, mac, bytes(vm), b'\0' * 6, bytes(gw))
w('gw-arp-request.bin', 7, 1, eth([255] * 6, mac, 0x806, arp))
w('gw-tcp-syn-up.bin', 7, 1, eth(gwmac, mac, 0x800, syn))
w('gw-icmp-echo-up.bin', 7, 1, eth(gwmac, mac, 0x800, echo))
w('gw-tunnel-echo.bin', 7, 3, ip4(srv, vm, 1, icmp))


def key(c):
    return base64.b64encode(bytes([c]) * 32).decode()


open('corpus/wgquick/office.conf', 'w').write(f"""# Handed out by the office's VPN admin
[Interface]
PrivateKey = {key(1)}
Address = 10.8.0.5/32, fd00:8::5/128
DNS = 10.8.0.1, office.example
MTU = 1420
PostUp = iptables -A FORWARD -i %i -j ACCEPT

[Peer]
PublicKey = {key(2)}
PresharedKey = {key(3)}
Endpoint = vpn.example.com:51820
AllowedIPs = 10.8.0.0/24, 192.168.10.0/24
AllowedIPs = fd00:8::/64
PersistentKeepalive = 25
""")
open('corpus/wgquick/minimal.conf', 'w').write(f"""[interface]
privatekey={key(4)}
[peer]
publickey={key(5)}
endpoint=[2001:db8::1]:51820
allowedips=0.0.0.0/0
""")
open('corpus/wgquick/two-peers.conf', 'w').write(f"""[Interface]
PrivateKey = {key(6)}
ListenPort = 51820
[Peer]
PublicKey = {key(7)}
Endpoint = 198.51.100.1:51820
AllowedIPs = 10.0.0.0/8
[Peer]
PublicKey = {key(8)}
""")
