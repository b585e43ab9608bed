// SPDX-License-Identifier: MIT OR GPL-2.0
//
// skiff's XDP program: parse Ethernet (one optional 802.1Q/802.1ad tag), IPv4 or IPv6,
// and redirect to XSKMAP[rx_queue_index] only the frames that match the filter userspace
// wrote into `skiff_config`. Everything else gets XDP_PASS, so ARP, ND and SSH keep working.
//
// Two tc programs (tcx, Linux >= 6.6) share the maps: `skiff impair --egress` impairs what
// the kernel on this side sends, which no XDP program on this side sees (docs/IMPAIR.md).
//
// Map layouts are mirrored in src/lib.rs; the sizes are asserted on both sides.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// Filter flags (mirrored as skiff_ebpf::flags).
#define SKIFF_F_ENABLED   (1u << 0) // without it every frame is passed
#define SKIFF_F_MATCH_ALL (1u << 1) // dedicated test interface: every frame matches
#define SKIFF_F_REORDER   (1u << 2) // impairment: deliver a share late (see skiff_impair)

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
#define SKIFF_CNT_REORDERED       7 // matched with action PASS, delivered late (impairment)
#define SKIFF_CNT_MAX             8

// 64 queues: more than any veth here and than most NICs expose per port.
#define SKIFF_MAX_QUEUES 64
// cpumap slots in the object: 64, which no kernel's CONFIG_NR_CPUS is below on x86-64
// (cpu_map_alloc refuses more than NR_CPUS, and the whole object would fail to load).
// skiff's loader replaces it with the number of possible CPUs. An empty slot costs a
// pointer; a filled one a kthread, so slots are filled only for `skiff impair --reorder`.
#define SKIFF_MAX_CPUS 64
// skb->mark of a frame the egress impairment delays, set while it is bounced through the
// interface's ingress and cleared when it passes egress again ("5c1ff" ~ "skiff").
#define SKIFF_DELAY_MARK 0x5c1ff000u

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

// Impairments beyond `loss` (netem's reorder, for kernels without sch_netem), read only
// when SKIFF_F_REORDER is set, with action PASS. A matching frame that is not lost is
// delivered late with probability reorder / 2^32:
// - XDP: redirected into skiff_cpus[(this CPU + cpu_offset) % ncpus]. That CPU's cpumap
//   kthread turns it into an skb and hands it to the stack once woken, after the NAPI poll
//   that redirected it has flushed (veth_poll calls xdp_do_flush, which wakes the kthread),
//   so frames that arrived after it are delivered first.
// - tc egress: bounced through the ingress backlog (netif_rx) of CPU (this CPU +
//   cpu_offset) % ncpus, steered there with RPS, and sent again when that CPU processes
//   its backlog, while this CPU goes on sending.
struct skiff_impair {
	__u32 reorder;
	__u32 cpu_offset; // 1: the next CPU (works concurrently); 0: this CPU (after the softirq)
	__u32 ncpus;      // XDP: cpumap slots (possible CPUs); tc: CPUs in rps_cpus. 0 is 1
	__u32 reserved;   // 0
};
_Static_assert(sizeof(struct skiff_impair) == 16, "skiff_impair is 16 bytes");

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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct skiff_impair);
} skiff_impair SEC(".maps");

// CPU → its cpumap kthread (queue size set by userspace), for --reorder.
struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, SKIFF_MAX_CPUS);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} skiff_cpus SEC(".maps");

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

// The impairment settings if this frame is to be delivered late (a random draw), else NULL.
static __always_inline const struct skiff_impair *delay_chosen(void)
{
	__u32 zero = 0;
	const struct skiff_impair *imp = bpf_map_lookup_elem(&skiff_impair, &zero);

	if (!imp || !imp->reorder || bpf_get_prandom_u32() >= imp->reorder)
		return NULL;
	return imp;
}

static __always_inline __u32 delay_cpu(const struct skiff_impair *imp)
{
	__u32 n = imp->ncpus ? imp->ncpus : 1;

	return (bpf_get_smp_processor_id() + imp->cpu_offset) % n;
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
	if (cfg->action == SKIFF_ACT_PASS && (cfg->flags & SKIFF_F_REORDER)) {
		const struct skiff_impair *imp = delay_chosen();

		// XDP_PASS comes back when that CPU's slot is empty: the frame is not delayed.
		if (imp && bpf_redirect_map(&skiff_cpus, delay_cpu(imp), XDP_PASS) == XDP_REDIRECT) {
			count(SKIFF_CNT_REORDERED, len);
			return XDP_REDIRECT;
		}
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

// Loss and reordering on an interface's egress (tcx), for what the kernel on this side
// sends: `skiff impair --egress`. skiff_config's filter and loss apply, its action does
// not (matching frames pass); SKIFF_F_REORDER needs skiff_tc_ingress on the same
// interface. tcx egress runs before GSO segmentation (__dev_queue_xmit calls
// sch_handle_egress before validate_xmit_skb), so a GSO packet is lost or delayed whole:
// set the interface's gso_max_segs to 1 (skiff impair --egress does) to impair segments.
// The frames keep their CHECKSUM_PARTIAL state through the bounce: no checksum is lost.
SEC("classifier")
int skiff_tc_egress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u64 len = skb->len;
	__u32 zero = 0;
	struct skiff_config *cfg;
	const struct skiff_impair *imp;
	int m;

	if (skb->mark == SKIFF_DELAY_MARK) {
		// Back from the ingress bounce: delayed once, now it goes.
		skb->mark = 0;
		return TC_ACT_OK;
	}
	cfg = bpf_map_lookup_elem(&skiff_config, &zero);
	if (!cfg || !(cfg->flags & SKIFF_F_ENABLED)) {
		count(SKIFF_CNT_PASSED, len);
		return TC_ACT_OK;
	}
	m = match(data, end, cfg);
	if (m < 0) {
		count(SKIFF_CNT_PARSE_ERROR, len);
		return TC_ACT_OK;
	}
	if (m == 0) {
		count(SKIFF_CNT_PASSED, len);
		return TC_ACT_OK;
	}
	if (cfg->loss && bpf_get_prandom_u32() < cfg->loss) {
		// Not TC_ACT_SHOT: dev_queue_xmit would return NET_XMIT_DROP and the sending TCP
		// would know at once (it enters CWR and sends the segment again; the receiver
		// never sees a gap). tcx acts only on PASS, DROP and REDIRECT (tcx_action_code in
		// include/net/tcx.h), and on egress a redirect reports NET_XMIT_SUCCESS whatever
		// becomes of it (sch_handle_egress, net/core/dev.c): a redirect to ifindex 0,
		// which no device has, is freed by skb_do_redirect while the sender believes it
		// went out, as with a loss on the wire.
		count(SKIFF_CNT_DROPPED, len);
		return bpf_redirect(0, 0);
	}
	if ((cfg->flags & SKIFF_F_REORDER) && (imp = delay_chosen())) {
		__u64 n = imp->ncpus ? imp->ncpus : 1;
		__u64 t = delay_cpu(imp);

		// Into the ingress backlog of CPU t; skiff_tc_ingress sends it out again when that
		// backlog is processed. netif_rx picks the backlog with RPS (get_rps_cpu:
		// rps_map->cpus[reciprocal_scale(hash, n)], reciprocal_scale(h, n) = h * n >> 32)
		// when the interface's rps_cpus lists the n CPUs (skiff impair --egress sets
		// that); the smallest such hash for index t, plus 1 (a zero hash skips RPS):
		// ceil(t * 2^32 / n) + 1, below (t + 1) * 2^32 / n for any n < 2^31.
		count(SKIFF_CNT_REORDERED, len);
		skb->mark = SKIFF_DELAY_MARK;
		bpf_set_hash(skb, (__u32)(((t << 32) + n - 1) / n + 1));
		return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
	}
	count(SKIFF_CNT_MATCHED_PASS, len);
	return TC_ACT_OK;
}

// The other half of the egress delay: a frame skiff_tc_egress bounced into this
// interface's ingress goes straight back out; everything else is left alone.
SEC("classifier")
int skiff_tc_ingress(struct __sk_buff *skb)
{
	if (skb->mark == SKIFF_DELAY_MARK)
		return bpf_redirect(skb->ifindex, 0);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual MIT/GPL";
