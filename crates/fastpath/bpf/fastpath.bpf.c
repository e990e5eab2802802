// SPDX-License-Identifier: Apache-2.0
// rvswitch kernel fast path: replays forwarding decisions the userspace pipeline made.
//
// One decision per frame, made once. AF_PACKET ETH_P_ALL sockets see a received frame before
// tc ingress runs, so the decision is taken by the socket filter (fp_sock) attached to
// rvswitchd's receive sockets: "fast" hides the frame from the slow path and leaves the
// decision in a per-CPU slot; the tc program (fp_tc) that runs next for the same skb on the
// same CPU executes exactly that decision. A frame no filter decided (slot empty or for
// another device) takes the slow path, unless the port is marked standalone (tests without
// sockets). Maps changing between the two hooks cannot make them disagree: only fp_sock reads
// the decision maps on the socket path.
//
// Isolation by construction: the egress ifindex comes only from a flow entry keyed by the
// frame's own (bridge, VLAN), the VLAN computed from the ingress port's own config.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88a8

// Port VLAN modes (same numbering as fastpath::maps::Mode).
#define MODE_ACCESS 0
#define MODE_TRUNK 1
#define MODE_NATIVE_TAGGED 2
#define MODE_NATIVE_UNTAGGED 3

// Port flags.
#define PORT_STANDALONE 1 // decide in tc when no filter did (tests; no slow-path sockets)
#define PORT_SLOW 2       // every frame of this port takes the slow path

// Port security the program mirrors (same numbering as fastpath::maps::Security). Anything a
// secured port sends that these do not fully clear takes the slow path, where the pipeline
// decides and counts its drop reason.
#define SEC_OFF 0 // no checks
#define SEC_MAC 1 // source MAC is the port's one allowed MAC; no hidden tag
#define SEC_IP 2  // SEC_MAC, and only IPv4 (no DHCP) from a source bound to the port

struct port_conf {
	__u32 bridge;
	__u16 tag;
	__u8 mode;
	__u8 flags;
	__u64 trunks[64]; // VLAN bitmap, 4096 bits
	__u8 mac[6];      // the allowed source MAC (sec != SEC_OFF)
	__u8 sec;
	__u8 pad;
};

// An IPv4 address (or prefix) a port may use as source: configured allowed-ips and
// DHCP-snooped leases, as the pipeline's binding table has them.
struct bind_key {
	__u32 prefixlen; // 32 (the ifindex) + the prefix length
	__u32 ifindex;
	__u8 ip[4];
};

struct bind_val {
	__u64 until_ns; // bpf_ktime_get_ns after which the binding no longer holds (~0: never)
};

struct flow_key {
	__u32 bridge;
	__u16 vlan;
	__u8 mac[6];
};

struct flow_val {
	__u32 ifindex; // the port this MAC was learned on
	__u16 vid;     // VID it leaves that port with (0 = untagged)
	__u16 pad;
	__u64 seen_ns; // last time a frame from this MAC was fast-pathed
};

struct counters {
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets;
	__u64 tx_bytes;
};

struct decision {
	__u32 in_ifindex; // 0 = empty slot
	__u32 len;
	__u32 out_ifindex;
	__u16 out_tci; // 0 = leave untagged
	__u8 tagged;   // whether the frame arrived with a tag (metadata or in-data)
	__u8 out_tagged;
};

// Built twice (build.rs): with RVS_PINNED every map is pinned by name under the directory the
// loader names (fastpath::pins), so a restarted rvswitchd adopts the same maps and the programs
// it replaces share them with its own — the decision slot included, so an old filter's decision
// is executed by a new tc program and vice versa, once. Without it (tests, --bpf-pin-dir off)
// the maps are private to one load.
#ifdef RVS_PINNED
#define PINNED __uint(pinning, 1 /* LIBBPF_PIN_BY_NAME */);
#else
#define PINNED
#endif

// Sizes: hash maps are preallocated, so these are kernel memory whether used or not (ports:
// 8192 × ~600 B ≈ 5 MB; counters: 8192 × 32 B per CPU). Flows are allocated on insert (only
// rvswitchd inserts; the program updates stamps in place), up to 256k MACs.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct port_conf);
	PINNED
} fp_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
	PINNED
} fp_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct counters);
	PINNED
} fp_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct bind_key);
	__type(value, struct bind_val);
	PINNED
} fp_binds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct decision);
	PINNED
} fp_slot SEC(".maps");

// 1 while the rvswitchd that loaded this program runs; it writes 0 when it stops. Sockets may
// outlive it (the fd keeper holds them across an upgrade) with this filter still attached, but
// its tc links end with it: the filter must then hide nothing, so frames queue for the
// successor instead of being lost. A daemon killed (-9) cannot write 0: the keeper then
// detaches this filter from the sockets it holds when that daemon's connection drops.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	PINNED
} fp_live SEC(".maps");

// Standalone mode only: the last decision executed per CPU, for tests to read back
// (BPF_PROG_TEST_RUN does not report a redirect's target).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct decision);
	PINNED
} fp_last SEC(".maps");

static __always_inline int vlan_in(const struct port_conf *p, __u16 vid)
{
	return (p->trunks[(vid >> 6) & 63] >> (vid & 63)) & 1;
}

// PortVlan::ingress_vlan: the frame's VLAN, or -1 when the port does not accept it.
static __always_inline int ingress_vlan(const struct port_conf *p, __u16 vid)
{
	switch (p->mode) {
	case MODE_ACCESS:
		return vid == 0 ? p->tag : -1;
	case MODE_TRUNK:
		return vlan_in(p, vid) ? vid : -1;
	case MODE_NATIVE_TAGGED:
	case MODE_NATIVE_UNTAGGED:
		if (vid == 0)
			return p->tag;
		return vlan_in(p, vid) ? vid : -1;
	}
	return -1;
}

struct l2 {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
	__be16 tci;
	__be16 inner;
};

// True for an IPv6 UDP datagram to port 546 (a DHCPv6 server's REPLY, which snooping binds
// leases from) or 547 (a client's RELEASE, which unbinds them), and for any IPv6 packet with
// an extension header, behind which either could hide: the pipeline walks those.
static __always_inline int is_dhcpv6(struct __sk_buff *skb, __u32 l3)
{
	__u8 next;
	__be16 dport;

	if (bpf_skb_load_bytes(skb, l3 + 6, &next, 1) < 0)
		return 1;
	if (next == 0 || next == 43 || next == 44 || next == 60)
		return 1; // hop-by-hop, routing, fragment, destination options
	if (next != 17)
		return 0;
	if (bpf_skb_load_bytes(skb, l3 + 40 + 2, &dport, sizeof(dport)) < 0)
		return 1;
	return dport == bpf_htons(546) || dport == bpf_htons(547);
}

// True for an IPv4 UDP datagram to port 68 (a DHCP server's answer to a client); any IPv4
// fragment after the first, whose ports cannot be seen, counts as one too. IPv6: is_dhcpv6.
static __always_inline int is_dhcp_to_client(struct __sk_buff *skb, __be16 ethertype, __u32 l3)
{
	__u8 ip[20];
	__be16 dport;

	if (ethertype == bpf_htons(0x86dd))
		return is_dhcpv6(skb, l3);
	if (ethertype != bpf_htons(0x0800))
		return 0;
	if (bpf_skb_load_bytes(skb, l3, ip, sizeof(ip)) < 0)
		return 1;
	if (ip[9] != 17) // UDP
		return 0;
	if (((ip[6] & 0x1f) | ip[7]) != 0) // fragment offset: no UDP header here
		return 1;
	__u32 ihl = (ip[0] & 0x0f) * 4;
	if (bpf_skb_load_bytes(skb, l3 + ihl + 2, &dport, sizeof(dport)) < 0)
		return 1;
	return dport == bpf_htons(68);
}

// check_ipv4 on a secured port, for the common case only: a well-formed IPv4 header whose
// source is one of the port's live bindings, and no DHCP (the pipeline snoops or drops it).
// 1 = the pipeline would let it pass; 0 = let the pipeline decide.
static __always_inline int ipv4_source_bound(struct __sk_buff *skb, __u32 ifindex, __u32 l3)
{
	__u8 ip[20];
	__be16 ports[2];

	if (bpf_skb_load_bytes(skb, l3, ip, sizeof(ip)) < 0)
		return 0;
	__u32 hl = (ip[0] & 0x0f) * 4;
	if ((ip[0] >> 4) != 4 || hl < 20 || l3 + hl > skb->len)
		return 0;
	if ((((__u32)ip[2] << 8) | ip[3]) < hl)
		return 0; // total length below the header
	if (ip[9] == 17 && (((ip[6] & 0x1f) | ip[7]) == 0)) {
		if (bpf_skb_load_bytes(skb, l3 + hl, ports, sizeof(ports)) < 0)
			return 0;
		if (ports[0] == bpf_htons(67) || ports[0] == bpf_htons(68) || ports[1] == bpf_htons(67) ||
		    ports[1] == bpf_htons(68))
			return 0; // DHCP: rogue-server check and snooping are the pipeline's
	}
	// 0.0.0.0 (a DHCP client), multicast and broadcast sources: the pipeline's business.
	if ((ip[12] | ip[13] | ip[14] | ip[15]) == 0 || (ip[12] & 0xf0) == 0xe0 ||
	    (ip[12] & ip[13] & ip[14] & ip[15]) == 0xff)
		return 0;
	struct bind_key k = { .prefixlen = 64, .ifindex = ifindex };
	__builtin_memcpy(k.ip, &ip[12], 4);
	struct bind_val *b = bpf_map_lookup_elem(&fp_binds, &k);
	return b && bpf_ktime_get_ns() < b->until_ns;
}

// The pipeline's port-security admission for a frame from port `p`, when the program can
// prove it: 1 = admitted; 0 = slow path (which may well admit it too).
static __always_inline int secured_ok(struct __sk_buff *skb, const struct port_conf *p, const __u8 *src,
				      __be16 ethertype, __u32 l3)
{
	if (p->sec == SEC_OFF)
		return 1;
	__u8 diff = 0;
#pragma unroll
	for (int i = 0; i < 6; i++)
		diff |= src[i] ^ p->mac[i];
	if (diff)
		return 0;
	if (ethertype == bpf_htons(ETH_P_8021Q_) || ethertype == bpf_htons(ETH_P_8021AD_) ||
	    ethertype == bpf_htons(0x9100))
		return 0; // a hidden tag
	if (p->sec == SEC_MAC)
		return 1;
	return ethertype == bpf_htons(0x0800) && ipv4_source_bound(skb, skb->ifindex, l3);
}

// Fills `d` and returns 1 when the frame may be fast-pathed; 0 = slow path.
static __always_inline int decide(struct __sk_buff *skb, struct decision *d)
{
	struct l2 h;
	__u32 ifindex = skb->ifindex;
	__u16 tci = 0;
	int tagged = 0;

	if (bpf_skb_load_bytes(skb, 0, &h, 14) < 0)
		return 0;
	if (skb->vlan_present) {
		if (skb->vlan_proto != bpf_htons(ETH_P_8021Q_))
			return 0;
		if (h.proto == bpf_htons(ETH_P_8021Q_) || h.proto == bpf_htons(ETH_P_8021AD_))
			return 0; // stacked tags: the slow path's business
		tci = skb->vlan_tci;
		tagged = 1;
	} else if (h.proto == bpf_htons(ETH_P_8021Q_)) {
		// A tag still in the data (BPF_PROG_TEST_RUN; live traffic is untagged before taps).
		if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) < 0)
			return 0;
		if (h.inner == bpf_htons(ETH_P_8021Q_) || h.inner == bpf_htons(ETH_P_8021AD_))
			return 0;
		tci = bpf_ntohs(h.tci);
		tagged = 1;
	} else if (h.proto == bpf_htons(ETH_P_8021AD_)) {
		return 0;
	}
	if ((h.dst[0] & 1) || (h.src[0] & 1))
		return 0; // flooding, reserved groups and bogus sources stay in userspace
	// DHCP answers to clients (and DHCPv6 both ways) stay in userspace: port security's DHCP
	// snooping binds leases from them, and a unicast DHCPACK or DHCPv6 REPLY the kernel
	// forwarded would never be seen there.
	int tag_in_data = tagged && !skb->vlan_present;
	__be16 ethertype = tag_in_data ? h.inner : h.proto;
	__u32 l3 = tag_in_data ? 18 : 14;
	if (is_dhcp_to_client(skb, ethertype, l3))
		return 0;

	struct port_conf *p = bpf_map_lookup_elem(&fp_ports, &ifindex);
	if (!p || (p->flags & PORT_SLOW))
		return 0;
	if (!secured_ok(skb, p, h.src, ethertype, l3))
		return 0;
	int vlan = ingress_vlan(p, tci & 0x0fff);
	if (vlan < 0)
		return 0;

	struct flow_key k = { .bridge = p->bridge, .vlan = (__u16)vlan };
	__builtin_memcpy(k.mac, h.src, 6);
	struct flow_val *src = bpf_map_lookup_elem(&fp_flows, &k);
	if (!src || src->ifindex != ifindex)
		return 0; // unknown or moved source: learning is the pipeline's
	__builtin_memcpy(k.mac, h.dst, 6);
	struct flow_val *dst = bpf_map_lookup_elem(&fp_flows, &k);
	if (!dst || dst->ifindex == ifindex || dst->ifindex == 0)
		return 0;

	src->seen_ns = bpf_ktime_get_ns();
	d->in_ifindex = ifindex;
	d->len = skb->len;
	d->out_ifindex = dst->ifindex;
	d->tagged = tagged;
	d->out_tagged = dst->vid != 0;
	d->out_tci = dst->vid != 0 ? ((tci & 0xe000) | (dst->vid & 0x0fff)) : 0;
	return 1;
}

static __always_inline void count(__u32 ifindex, int rx, __u64 len)
{
	struct counters *c = bpf_map_lookup_elem(&fp_counters, &ifindex);
	if (!c) {
		struct counters zero = {};
		bpf_map_update_elem(&fp_counters, &ifindex, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&fp_counters, &ifindex);
		if (!c)
			return;
	}
	if (rx) {
		c->rx_packets++;
		c->rx_bytes += len;
	} else {
		c->tx_packets++;
		c->tx_bytes += len;
	}
}

SEC("socket")
int fp_sock(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct decision *d = bpf_map_lookup_elem(&fp_slot, &zero);

	if (!d)
		return -1;
	d->in_ifindex = 0;
	__u32 *live = bpf_map_lookup_elem(&fp_live, &zero);
	if (!live || !*live)
		return -1;
	if (decide(skb, d))
		return 0; // the kernel forwards it: hide it from the slow path
	return -1;        // keep the whole frame
}

// Carries out a fast-path decision: the egress tag exactly as the pipeline's Encap would
// write it (any ingress tag popped, the egress tag pushed as metadata), then the redirect.
static __always_inline int execute(struct __sk_buff *skb, const struct decision *d)
{
	__u32 in_len = skb->len;

	if (d->tagged && bpf_skb_vlan_pop(skb) < 0)
		return TC_ACT_SHOT;
	if (d->out_tagged && bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q_), d->out_tci) < 0)
		return TC_ACT_SHOT;
	count(d->in_ifindex, 1, in_len + (d->tagged ? 4 : 0));
	count(d->out_ifindex, 0, skb->len + (d->out_tagged ? 4 : 0));
	return bpf_redirect(d->out_ifindex, 0);
}

SEC("classifier")
int fp_tc(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct decision *slot = bpf_map_lookup_elem(&fp_slot, &zero);
	struct decision d = {};

	if (!slot)
		return TC_ACT_OK;
	if (slot->in_ifindex != 0) {
		if (slot->in_ifindex != skb->ifindex || slot->len != skb->len) {
			slot->in_ifindex = 0;
			return TC_ACT_OK; // a stale decision is never replayed
		}
		d = *slot;
		slot->in_ifindex = 0;
		return execute(skb, &d);
	}
	__u32 ifindex = skb->ifindex;
	struct port_conf *p = bpf_map_lookup_elem(&fp_ports, &ifindex);
	if (!p || !(p->flags & PORT_STANDALONE))
		return TC_ACT_OK; // no socket filter decided: the slow path sees it
	if (!decide(skb, &d))
		return TC_ACT_OK;
	struct decision *last = bpf_map_lookup_elem(&fp_last, &zero);
	if (last)
		*last = d;
	return execute(skb, &d);
}

char LICENSE[] SEC("license") = "GPL";
