/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Frame parsing: the kernel's ipvlan_get_L3_hdr() and the demux keys of
 * ipvlan_addr_lookup() (semantics §2.1). Each helper bounds-checks against
 * data_end and returns 0 on success, negative when the frame is not parsable.
 */
#ifndef IVB_PARSE_H
#define IVB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "consts.h"
#include "../../maps/layout.h"

/* ARP for IPv4 over Ethernet: the only ARP the kernel's ipvlan demuxes */
struct ivb_arp_eth_ipv4 {
	__be16 ar_hrd;
	__be16 ar_pro;
	__u8 ar_hln;
	__u8 ar_pln;
	__be16 ar_op;
	__u8 ar_sha[6];
	__u8 ar_sip[4];
	__u8 ar_tha[6];
	__u8 ar_tip[4];
} __attribute__((packed));

struct ivb_icmp6_ns {
	__u8 type;
	__u8 code;
	__be16 csum;
	__u32 reserved;
	__u8 target[16];
};

/* What the datapath needs from one frame. */
struct ivb_frame {
	__u16 proto;      /* ETH_P_* of the frame, host order */
	__u8 has_key;     /* 1 when the frame has an L3 demux key */
	__u8 dad_ns;      /* IPv6 NS from :: (DAD): both keys are the NS target */
	__u8 mcast_dst;   /* destination MAC is multicast/broadcast */
	__u8 mac_local;   /* destination MAC == source MAC (the kernel's "local" test) */
	__u8 l3_ok;       /* an IPv4/IPv6/ARP header the kernel's parser accepts */
	/*
	 * the port's MAC (the one all slaves share) as the frame's Ethernet
	 * source, as its destination, as an ARP sender's hardware address (1
	 * when not ARP): compared here once, read by every check after
	 */
	__u8 src_is_master;
	__u8 dst_is_master;
	__u8 arp_sha_is_master;
	__u8 pad;
	struct ivb_addr_key dst; /* key "by destination" */
	struct ivb_addr_key src; /* key "by source" */
	/*
	 * the sender's entry for src (slave egress; NULL when not looked up or
	 * not learned): one lookup serves source validation and the l3 checks
	 */
	const struct ivb_addr_owner *src_owner;
};

static __always_inline int ivb_mac_is_multicast(const __u8 *mac)
{
	return mac[0] & 1;
}

static __always_inline int ivb_mac_equal(const __u8 *a, const __u8 *b)
{
	return ((*(const __u32 *)a ^ *(const __u32 *)b) |
		(*(const __u16 *)(a + 4) ^ *(const __u16 *)(b + 4))) == 0;
}

static __always_inline void ivb_key_v4(struct ivb_addr_key *k, __u32 port_id, const __u8 *a)
{
	k->port_id = port_id;
	k->family = IVB_AF_INET;
	__builtin_memcpy(k->addr, a, 4);
}

static __always_inline void ivb_key_v6(struct ivb_addr_key *k, __u32 port_id, const __u8 *a)
{
	k->port_id = port_id;
	k->family = IVB_AF_INET6;
	__builtin_memcpy(k->addr, a, 16);
}

static __always_inline int ivb_ipv6_is_unspecified(const struct in6_addr *a)
{
	return (a->in6_u.u6_addr32[0] | a->in6_u.u6_addr32[1] | a->in6_u.u6_addr32[2] |
		a->in6_u.u6_addr32[3]) == 0;
}

/*
 * Parses the Ethernet header, its MACs against the port's (`master_mac`)
 * and the L3 demux keys. Returns 0 when the frame has an Ethernet header
 * (even without an L3 key), -1 when it is too short. The caller must have
 * pulled enough of a non-linear skb into the head.
 */
static __always_inline int ivb_parse(struct __sk_buff *skb, __u32 port_id, const __u8 *master_mac,
				     struct ivb_frame *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	__builtin_memset(f, 0, sizeof(*f));
	if ((void *)(eth + 1) > data_end)
		return -1;
	f->proto = bpf_ntohs(eth->h_proto);
	f->mcast_dst = ivb_mac_is_multicast(eth->h_dest);
	f->mac_local = ivb_mac_equal(eth->h_dest, eth->h_source);
	f->src_is_master = ivb_mac_equal(eth->h_source, master_mac);
	f->dst_is_master = ivb_mac_equal(eth->h_dest, master_mac);
	f->arp_sha_is_master = 1;

	if (f->proto == IVB_ETH_P_ARP) {
		struct ivb_arp_eth_ipv4 *arp = (void *)(eth + 1);

		/*
		 * ipvlan_get_L3_hdr: arp_hdr_len() of the master (Ethernet) must
		 * fit; the addresses are read at Ethernet/IPv4 offsets whatever
		 * hln/pln say
		 */
		if ((void *)(arp + 1) > data_end)
			return 0;
		f->arp_sha_is_master = ivb_mac_equal(arp->ar_sha, master_mac);
		f->l3_ok = 1;
		ivb_key_v4(&f->dst, port_id, arp->ar_tip);
		ivb_key_v4(&f->src, port_id, arp->ar_sip);
		f->has_key = 1;
	} else if (f->proto == IVB_ETH_P_IP) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return 0;
		/* ipvlan_get_L3_hdr: version 4, ihl >= 5, tot_len within the skb */
		if (ip->version != 4 || ip->ihl < 5)
			return 0;
		if (bpf_ntohs(ip->tot_len) > skb->len - IVB_ETH_HLEN ||
		    bpf_ntohs(ip->tot_len) < ip->ihl * 4)
			return 0;
		f->l3_ok = 1;
		ivb_key_v4(&f->dst, port_id, (const __u8 *)&ip->daddr);
		ivb_key_v4(&f->src, port_id, (const __u8 *)&ip->saddr);
		f->has_key = 1;
	} else if (f->proto == IVB_ETH_P_IPV6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		if (ip6->version != 6)
			return 0;
		if (ivb_ipv6_is_unspecified(&ip6->saddr) && ip6->nexthdr == IVB_NEXTHDR_ICMPV6) {
			/* from ::, only a DAD NS has a key: its target, both ways */
			struct ivb_icmp6_ns *ns = (void *)(ip6 + 1);

			/* the ICMPv6 header (8 bytes, as ipvlan_get_L3_hdr pulls); an NS with its target */
			if ((void *)ns + 8 > data_end)
				return 0;
			f->l3_ok = bpf_ntohs(ip6->payload_len) + sizeof(*ip6) <= skb->len - IVB_ETH_HLEN;
			if (ns->type != IVB_NDISC_NEIGHBOUR_SOLICITATION)
				return 0;
			if ((void *)(ns + 1) > data_end) {
				f->l3_ok = 0;
				return 0;
			}
			ivb_key_v6(&f->dst, port_id, ns->target);
			ivb_key_v6(&f->src, port_id, ns->target);
			f->dad_ns = 1;
			f->has_key = 1;
			return 0;
		}
		/* the payload the header announces must be there (the slave's stack builds no less) */
		f->l3_ok = bpf_ntohs(ip6->payload_len) + sizeof(*ip6) <= skb->len - IVB_ETH_HLEN;
		ivb_key_v6(&f->dst, port_id, (const __u8 *)&ip6->daddr);
		ivb_key_v6(&f->src, port_id, (const __u8 *)&ip6->saddr);
		f->has_key = 1;
	}
	return 0;
}

/* Bytes the parser may read: Ethernet + IPv6 + an NS with its target. */
#define IVB_PARSE_PULL (IVB_ETH_HLEN + 40 + 24)

static __always_inline void ivb_pull_headers(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 want = skb->len < IVB_PARSE_PULL ? skb->len : IVB_PARSE_PULL;

	if (data + IVB_PARSE_PULL > data_end && data_end - data < (long)want)
		bpf_skb_pull_data(skb, want);
}

#endif /* IVB_PARSE_H */
