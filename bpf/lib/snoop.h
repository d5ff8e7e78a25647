/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A slave's own membership reports open its multicast filter (mcfilter.h),
 * as a snooping switch learns a port's groups.
 *
 * The kernel driver updates a slave's filter inside the join itself
 * (ndo_set_rx_mode under setsockopt). The agent learns the join from the
 * RTM_NEWMULTICAST notification and re-reads the slave's list: a moment
 * later, or much later when the agent is stalled or stopped, and until then
 * the slave's copies of that group were dropped. The report the slave's
 * stack sends for the join (IGMP v1/v2/v3, MLD v1/v2; a few milliseconds
 * after it: the kernel's report timer) passes its host peer's TC ingress,
 * so the datapath sets the group's bit itself, without waiting for anyone.
 *
 * Only bits are set here, never cleared: a leave, ALLMULTI/PROMISC and
 * link-layer groups (`ip maddr`) stay the agent's, which reads the slave's
 * list (the authority) and rewrites the whole filter. A bit set for a group
 * the slave does not hold (a forged or stale report) lets copies through to
 * its own stack only, which drops them as it does a hash collision's. A
 * filter the agent has not kept yet passes everything and is left alone.
 */
#ifndef IVB_SNOOP_H
#define IVB_SNOOP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "maps.h"
#include "parse.h"
#include "mcfilter.h"

#define IVB_IPPROTO_IGMP 2
#define IVB_IPPROTO_HOPOPTS 0
#define IVB_IGMPV1_REPORT 0x12
#define IVB_IGMPV2_REPORT 0x16
#define IVB_IGMPV3_REPORT 0x22
#define IVB_MLDV1_REPORT 131
#define IVB_MLDV2_REPORT 143
/* v3/v2 group record types (RFC 3376 4.2.12, RFC 3810 5.2.12) that name no membership */
#define IVB_REC_CHANGE_TO_INCLUDE 3
#define IVB_REC_BLOCK_OLD_SOURCES 6
/* records read of one report: the kernel packs as many as its MTU allows, each group once */
#define IVB_SNOOP_MAX_RECORDS 64

/* The walk over a v3/v2 report's group records (bpf_loop() callback state). */
struct ivb_snoop_walk {
	struct __sk_buff *skb;
	struct ivb_mc_filter *flt;
	__u32 off;     /* the next record's offset in the frame */
	__u32 is_ipv6; /* MLDv2: 16-byte addresses */
};

/* Sets the bit of the group whose MAC ends in bytes 2..5 = W (mcfilter.h's hash input). */
static __always_inline void ivb_mc_filter_open(struct ivb_mc_filter *flt, const __u8 *w)
{
	__u8 mac[6] = { 0, 0, w[0], w[1], w[2], w[3] };
	__u32 h = ivb_mac_hash(mac);

	/* a racing bit lost here is restored by the agent's next read of the list */
	flt->bits[(h >> 3) & 31] |= 1 << (h & 7);
}

/* The group address at OFF as its MAC's bytes 2..5: 5e + low 23 bits (IPv4), the last 4 bytes (IPv6). */
static __always_inline int ivb_group_mac_tail(struct __sk_buff *skb, __u32 off, __u32 is_ipv6, __u8 *w)
{
	if (bpf_skb_load_bytes(skb, off + (is_ipv6 ? 12 : 0), w, 4) < 0)
		return -1;
	if (!is_ipv6) {
		w[0] = 0x5e;
		w[1] &= 0x7f;
	}
	return 0;
}

/* One group record of a v3/MLDv2 report (bpf_loop() callback): 1 stops the walk. */
static long ivb_snoop_record(__u64 i, void *data)
{
	struct ivb_snoop_walk *w = data;
	__u32 alen = w->is_ipv6 ? 16 : 4;
	__u8 hdr[4], tail[4];
	__u32 nsrcs;

	/* type, aux data length (32-bit words), number of sources, then the group */
	if (bpf_skb_load_bytes(w->skb, w->off, hdr, sizeof(hdr)) < 0)
		return 1;
	nsrcs = (__u32)hdr[2] << 8 | hdr[3];
	if (!(hdr[0] == IVB_REC_CHANGE_TO_INCLUDE && nsrcs == 0) && hdr[0] != IVB_REC_BLOCK_OLD_SOURCES &&
	    ivb_group_mac_tail(w->skb, w->off + 4, w->is_ipv6, tail) == 0)
		ivb_mc_filter_open(w->flt, tail);
	w->off += 4 + alen + nsrcs * alen + (__u32)hdr[1] * 4;
	return 0;
}

/*
 * A membership report the slave whose host peer is SELF sent (frame F, a
 * multicast one): the bits of the groups it reports joined are set in the
 * slave's filter. Anything else returns at the first byte that differs.
 */
static __always_inline void ivb_snoop_membership(struct __sk_buff *skb, const struct ivb_frame *f, __u32 self)
{
	struct ivb_slave_key sk = { .port_id = ivb_port_id, .peer_ifindex = self };
	struct ivb_snoop_walk w = { .skb = skb };
	__u8 b[8], tail[4];
	__u32 off, *index;
	__u16 nrec;

	if (f->proto == IVB_ETH_P_IP) {
		__u8 ip[10];

		/* version/IHL (byte 0) and protocol (byte 9), one load: every multicast frame a slave sends pays it */
		if (bpf_skb_load_bytes(skb, IVB_ETH_HLEN, ip, sizeof(ip)) < 0 || ip[9] != IVB_IPPROTO_IGMP)
			return;
		off = IVB_ETH_HLEN + (ip[0] & 0xf) * 4;
	} else if (f->proto == IVB_ETH_P_IPV6) {
		/* next header; MLD comes after a hop-by-hop header (the router alert) */
		if (bpf_skb_load_bytes(skb, IVB_ETH_HLEN + 6, b, 1) < 0)
			return;
		off = IVB_ETH_HLEN + 40;
		if (b[0] == IVB_IPPROTO_HOPOPTS) {
			if (bpf_skb_load_bytes(skb, off, b, 2) < 0)
				return;
			off += ((__u32)b[1] + 1) * 8;
		}
		if (b[0] != IVB_NEXTHDR_ICMPV6)
			return;
		w.is_ipv6 = 1;
	} else {
		return;
	}
	/* type, code, checksum, then (v1/v2) a word and the group, or (v3/MLDv2) a reserved half and the count */
	if (bpf_skb_load_bytes(skb, off, b, sizeof(b)) < 0)
		return;
	if (w.is_ipv6 ? b[0] != IVB_MLDV1_REPORT && b[0] != IVB_MLDV2_REPORT
		      : b[0] != IVB_IGMPV1_REPORT && b[0] != IVB_IGMPV2_REPORT && b[0] != IVB_IGMPV3_REPORT)
		return;
	index = bpf_map_lookup_elem(&ivb_slave_ids, &sk);
	if (!index)
		return;
	w.flt = bpf_map_lookup_elem(&ivb_mc_filters, index);
	if (!w.flt || !w.flt->kept)
		return;
	if (b[0] == IVB_MLDV2_REPORT || b[0] == IVB_IGMPV3_REPORT) {
		nrec = (__u16)b[6] << 8 | b[7];
		w.off = off + 8;
		bpf_loop(nrec < IVB_SNOOP_MAX_RECORDS ? nrec : IVB_SNOOP_MAX_RECORDS, ivb_snoop_record, &w, 0);
		return;
	}
	/* IGMP v1/v2: the group at 4; MLDv1: after the maximum delay and a reserved half, at 8 */
	if (ivb_group_mac_tail(skb, off + (w.is_ipv6 ? 8 : 4), w.is_ipv6, tail) == 0)
		ivb_mc_filter_open(w.flt, tail);
}

#endif /* IVB_SNOOP_H */
