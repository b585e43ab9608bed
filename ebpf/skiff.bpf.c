// SPDX-License-Identifier: MIT OR GPL-2.0
//
// skiff's XDP program: parse Ethernet (one optional 802.1Q/802.1ad tag), IPv4 or IPv6,
// and redirect to XSKMAP[rx_queue_index] only the frames that match the filter userspace
// wrote into `skiff_config`. Everything else gets XDP_PASS, so ARP, ND and SSH keep working.
//
// Map layouts are mirrored in src/lib.rs; the sizes are asserted on both sides.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// Filter flags (mirrored as skiff_ebpf::flags).
#define SKIFF_F_ENABLED   (1u << 0) // without it every frame is passed
#define SKIFF_F_MATCH_ALL (1u << 1) // dedicated test interface: every frame matches

// What to do with a matching frame (mirrored as skiff_ebpf::Action).
#define SKIFF_ACT_REDIRECT 0 // into the AF_XDP socket of this rx queue
#define SKIFF_ACT_DROP     1 // XDP_DROP: the "peer drops with XDP" of the TX benchmark
#define SKIFF_ACT_PASS     2 // count, then let the kernel have it
#define SKIFF_ACT_REFLECT  3 // latency probes: swap addresses and XDP_TX them back

// Counter slots (mirrored as skiff_ebpf::Outcome).
#define SKIFF_CNT_REDIRECTED      0
#define SKIFF_CNT_PASSED          1 // did not match the filter
#define SKIFF_CNT_REDIRECT_FAILED 2 // matched, but no socket in XSKMAP for this queue
#define SKIFF_CNT_PARSE_ERROR     3 // truncated or malformed header: passed to the kernel
#define SKIFF_CNT_DROPPED         4 // matched with action DROP
#define SKIFF_CNT_MATCHED_PASS    5 // matched with action PASS (or REFLECT, not a probe)
#define SKIFF_CNT_REFLECTED       6 // matched with action REFLECT: sent back with XDP_TX
#define SKIFF_CNT_MAX             7

// 64 queues: more than any veth here and than most NICs expose per port.
#define SKIFF_MAX_QUEUES 64

struct skiff_config {
	__u32 flags;
	__u16 port_lo; // inclusive, host byte order
	__u16 port_hi; // inclusive, host byte order
	__u32 action;
	// Impairment: a matching frame is dropped with probability loss / 2^32 before its
	// action (counted as dropped); 0: never (netem's loss, for kernels without sch_netem).
	__u32 loss;
};
_Static_assert(sizeof(struct skiff_config) == 16, "skiff_config is 16 bytes");

struct skiff_counter {
	__u64 packets;
	__u64 bytes;
};
_Static_assert(sizeof(struct skiff_counter) == 16, "skiff_counter is 16 bytes");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, SKIFF_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} skiff_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct skiff_config);
} skiff_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SKIFF_CNT_MAX);
	__type(key, __u32);
	__type(value, struct skiff_counter);
} skiff_counters SEC(".maps");

static __always_inline void count(__u32 slot, __u64 bytes)
{
	struct skiff_counter *c = bpf_map_lookup_elem(&skiff_counters, &slot);

	if (c) {
		c->packets += 1;
		c->bytes += bytes;
	}
}

// Returns 1 if the frame matches, 0 if not, -1 on a malformed header.
static __always_inline int match(void *data, void *end, const struct skiff_config *cfg)
{
	struct ethhdr *eth = data;
	void *l3;
	__u16 proto;
	__u8 l4proto;
	void *l4;

	if ((void *)(eth + 1) > end)
		return -1;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		// One tag: 2 bytes TCI, 2 bytes inner EtherType.
		__be16 *tag = l3;

		if ((void *)(tag + 2) > end)
			return -1;
		proto = tag[1];
		l3 = tag + 2;
	}
	if (cfg->flags & SKIFF_F_MATCH_ALL)
		return 1;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > end)
			return -1;
		if (ip->ihl < 5 || ip->version != 4)
			return -1;
		// Fragments go to the kernel, all of them: only the first carries the ports, and
		// splitting one datagram between the socket and the kernel would help nobody.
		// 0x3fff = more-fragments flag | fragment offset.
		if (ip->frag_off & bpf_htons(0x3fff))
			return 0;
		l4proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > end)
			return -1;
		// Extension headers are not walked: skiff's own traffic carries none.
		l4proto = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		return 0; // ARP, LLDP, ...: the kernel's
	}

	if (l4proto == IPPROTO_UDP || l4proto == IPPROTO_TCP) {
		// Source and destination ports sit at the same offsets in UDP and TCP.
		__be16 *ports = l4;
		__u16 dport;

		if ((void *)(ports + 2) > end)
			return -1;
		dport = bpf_ntohs(ports[1]);
		return dport >= cfg->port_lo && dport <= cfg->port_hi;
	}
	return 0;
}

// The probe signature at the start of the UDP payload (skiff_engine::latency::probe).
#define SKIFF_PROBE_MAGIC0 'S'
#define SKIFF_PROBE_MAGIC1 'K'
#define SKIFF_PROBE_MAGIC2 'P'
#define SKIFF_PROBE_MAGIC3 'B'

static __always_inline void swap_bytes(__u8 *a, __u8 *b, int n)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (i < n) {
			__u8 t = a[i];

			a[i] = b[i];
			b[i] = t;
		}
	}
}

// The in-kernel reflector: a UDP frame whose payload starts with the probe signature gets
// its Ethernet, IP and UDP addresses swapped and goes back out of the interface it came
// in on. No checksum changes: a one's complement sum does not depend on the order of the
// words it sums. Returns 1 if reflected, 0 if the frame is not a probe.
static __always_inline int reflect_probe(void *data, void *end)
{
	struct ethhdr *eth = data;
	void *l3;
	__u16 proto;
	struct udphdr *udp;
	__u8 *magic, *saddr, *daddr;
	int alen;
	__u16 port;

	if ((void *)(eth + 1) > end)
		return 0;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		__be16 *tag = l3;

		if ((void *)(tag + 2) > end)
			return 0;
		proto = tag[1];
		l3 = tag + 2;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > end || ip->ihl < 5 || ip->protocol != IPPROTO_UDP)
			return 0;
		if (ip->frag_off & bpf_htons(0x3fff))
			return 0;
		udp = (void *)ip + ip->ihl * 4;
		saddr = (__u8 *)&ip->saddr;
		daddr = (__u8 *)&ip->daddr;
		alen = 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_UDP)
			return 0;
		udp = (void *)(ip6 + 1);
		saddr = (__u8 *)&ip6->saddr;
		daddr = (__u8 *)&ip6->daddr;
		alen = 16;
	} else {
		return 0;
	}
	if ((void *)(udp + 1) > end)
		return 0;
	magic = (__u8 *)(udp + 1);
	if ((void *)(magic + 4) > end)
		return 0;
	if (magic[0] != SKIFF_PROBE_MAGIC0 || magic[1] != SKIFF_PROBE_MAGIC1 ||
	    magic[2] != SKIFF_PROBE_MAGIC2 || magic[3] != SKIFF_PROBE_MAGIC3)
		return 0;
	swap_bytes(saddr, daddr, alen);
	port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	swap_bytes(eth->h_dest, eth->h_source, ETH_ALEN);
	return 1;
}

SEC("xdp")
int skiff_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 len = end - data;
	__u32 zero = 0;
	struct skiff_config *cfg = bpf_map_lookup_elem(&skiff_config, &zero);
	int m;

	if (!cfg || !(cfg->flags & SKIFF_F_ENABLED)) {
		count(SKIFF_CNT_PASSED, len);
		return XDP_PASS;
	}
	m = match(data, end, cfg);
	if (m < 0) {
		count(SKIFF_CNT_PARSE_ERROR, len);
		return XDP_PASS;
	}
	if (m == 0) {
		count(SKIFF_CNT_PASSED, len);
		return XDP_PASS;
	}
	if (cfg->action == SKIFF_ACT_DROP || (cfg->loss && bpf_get_prandom_u32() < cfg->loss)) {
		count(SKIFF_CNT_DROPPED, len);
		return XDP_DROP;
	}
	if (cfg->action == SKIFF_ACT_REFLECT) {
		if (reflect_probe(data, end)) {
			count(SKIFF_CNT_REFLECTED, len);
			return XDP_TX;
		}
		count(SKIFF_CNT_MATCHED_PASS, len);
		return XDP_PASS;
	}
	if (cfg->action == SKIFF_ACT_PASS) {
		count(SKIFF_CNT_MATCHED_PASS, len);
		return XDP_PASS;
	}
	// The fallback action XDP_PASS is returned when no socket sits at this index.
	if (bpf_redirect_map(&skiff_xsks, ctx->rx_queue_index, XDP_PASS) == XDP_REDIRECT) {
		count(SKIFF_CNT_REDIRECTED, len);
		return XDP_REDIRECT;
	}
	count(SKIFF_CNT_REDIRECT_FAILED, len);
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual MIT/GPL";
