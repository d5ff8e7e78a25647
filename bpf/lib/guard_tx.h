/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What a slave may send, checked before any forwarding decision: hostile
 * namespaces own their veth end and can change its MAC or send from any
 * address, which a kernel ipvlan slave cannot (MAC) or is not checked for
 * (addresses). Issue 6: MAC enforcement always, source validation per port.
 */
#ifndef IVB_GUARD_TX_H
#define IVB_GUARD_TX_H

#include "parse.h"
#include "demux.h"
#include "verdict.h"
#include "slowpath.h"

#define IVB_NDISC_NEIGHBOUR_ADVERTISEMENT 136

/*
 * The kernel builds every slave frame with the master's MAC
 * (ipvlan_hard_header): as the source, and as an ARP sender's address.
 */
static __always_inline int ivb_mac_spoofed(const struct ivb_frame *f)
{
	return !f->src_is_master || !f->arp_sha_is_master;
}

static __always_inline int ivb_addr_is_zero(const __u8 *a, int len)
{
	__u8 acc = 0;

	for (int i = 0; i < 16; i++)
		if (i < len)
			acc |= a[i];
	return acc == 0;
}

/* The address is the sender's own (learned on it, up or not). */
static __always_inline int ivb_owned_by(const struct ivb_addr_key *k, __u32 self)
{
	struct ivb_addr_owner *o = ivb_addr_lookup(k);

	return o && o->peer_ifindex == self;
}

#define IVB_SRC_SPOOFED 1 /* another slave's, or an advertised target not the sender's */
#define IVB_SRC_UNKNOWN 2 /* nobody's yet: the slave may have just added it */

/*
 * Source validation: IPv4/IPv6 source, ARP sender, the target of a neighbour
 * advertisement must be the slave's own; the unspecified address (DHCP,
 * ARP probes, DAD, MLD before a link-local exists) passes. Returns 0, or
 * IVB_SRC_SPOOFED / IVB_SRC_UNKNOWN.
 */
static __always_inline int ivb_source_spoofed(struct __sk_buff *skb, const struct ivb_frame *f, __u32 self)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (!f->has_key)
		return 0; /* non-IP, non-ARP: nothing to validate (l3 drops it anyway) */
	if (f->dad_ns)
		return 0; /* from ::, keyed by the NS target: the slave probes its own address */
	if (!ivb_addr_is_zero(f->src.addr, f->src.family == IVB_AF_INET ? 4 : 16) &&
	    !(f->src_owner && f->src_owner->peer_ifindex == self))
		return f->src_owner ? IVB_SRC_SPOOFED : IVB_SRC_UNKNOWN;
	if (f->proto == IVB_ETH_P_IPV6) {
		struct ipv6hdr *ip6 = data + IVB_ETH_HLEN;
		struct ivb_icmp6_ns *na = (void *)(ip6 + 1);
		struct ivb_addr_key k = {};

		if ((void *)(na + 1) > data_end || ip6->nexthdr != IVB_NEXTHDR_ICMPV6 ||
		    na->type != IVB_NDISC_NEIGHBOUR_ADVERTISEMENT)
			return 0;
		/* an advertisement claims its target: only the slave's own */
		ivb_key_v6(&k, f->src.port_id, na->target);
		return ivb_owned_by(&k, self) ? 0 : IVB_SRC_SPOOFED;
	}
	return 0;
}

/* Returns a drop verdict, or -1 when the frame may go on. */
static __always_inline int ivb_check_sender(struct __sk_buff *skb, const struct ivb_port *port,
					    const struct ivb_frame *f, __u32 self)
{
	/* a kernel slave cannot carry VLANs, and a header its stack would not build is not forwarded */
	if (skb->vlan_present || f->proto == IVB_ETH_P_8021Q || f->proto == IVB_ETH_P_8021AD)
		return IVB_DROP(skb, IVB_DROP_VLAN_TAGGED);
	if ((f->proto == IVB_ETH_P_IP || f->proto == IVB_ETH_P_IPV6 || f->proto == IVB_ETH_P_ARP) && !f->l3_ok)
		return IVB_DROP(skb, IVB_DROP_MALFORMED);
	if (ivb_mac_spoofed(f))
		return IVB_DROP(skb, IVB_DROP_SPOOFED_MAC);
	if (port->options & IVB_OPT_SOURCE_VALIDATION) {
		int spoofed = ivb_source_spoofed(skb, f, self), ret;

		/* an address nobody owns yet may be one the table has not caught up with */
		if (spoofed == IVB_SRC_UNKNOWN) {
			ret = ivb_hold(skb, &f->src, IVB_DROP_UNKNOWN_SOURCE);
			if (ret >= 0)
				return ret;
		}
		if (spoofed)
			return IVB_DROP(skb, IVB_DROP_SPOOFED_SOURCE);
	}
	return -1;
}

#endif /* IVB_GUARD_TX_H */
