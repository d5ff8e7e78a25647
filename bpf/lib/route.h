/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * L3/L3S egress of a slave into the master's namespace: the kernel's
 * ipvlan_process_v4_outbound()/ipvlan_process_v6_outbound(), which route the
 * packet again in the master's namespace with the master as output device and
 * send it with ip_local_out (master OUTPUT/POSTROUTING see it, no TTL change).
 *
 * A TC program cannot call ip_local_out. We hand the packet to the master
 * namespace's stack through the host-side peer (forwarding enabled on that
 * peer only), which gives netfilter and conntrack in the master namespace
 * sight of it and does routing and neighbour resolution there; the TTL /
 * hop limit is raised by one first so that the forward path's decrement
 * leaves it as the slave sent it. Where the kernel's oif-pinned IPv4 lookup
 * differs from what forwarding would do (a route through another device, an
 * address local to another device) and for IPv6 link-local destinations,
 * which are never forwarded, bpf_redirect_neigh() sends it out the master
 * with the same oif-pinned lookup the kernel does. Known difference: an
 * IPv4 address local to another device of the master's namespace (a "shim"
 * slave there) is delivered, where the kernel's oif-pinned lookup would ARP
 * for it on the master.
 */
#ifndef IVB_ROUTE_H
#define IVB_ROUTE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "consts.h"
#include "maps.h"
#include "parse.h"
#include "verdict.h"
#include "demux.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Raise TTL / hop limit by one so the master stack's forward decrement cancels out. */
static __always_inline void ivb_ttl_compensate(struct __sk_buff *skb, __u16 proto)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (proto == IVB_ETH_P_IP) {
		struct iphdr *ip = data + IVB_ETH_HLEN;
		__u16 old, new;

		if ((void *)(ip + 1) > data_end || ip->ttl == 255)
			return;
		/* TTL is the high byte of the 16-bit word it shares with protocol */
		old = bpf_htons((__u16)ip->ttl << 8);
		new = bpf_htons((__u16)(ip->ttl + 1) << 8);
		bpf_l3_csum_replace(skb, IVB_ETH_HLEN + offsetof(struct iphdr, check), old, new, 2);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		ip = data + IVB_ETH_HLEN;
		if ((void *)(ip + 1) > data_end)
			return;
		ip->ttl++;
	} else if (proto == IVB_ETH_P_IPV6) {
		struct ipv6hdr *ip6 = data + IVB_ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end || ip6->hop_limit == 255)
			return;
		ip6->hop_limit++;
	}
}

/*
 * A shim slave (its end in the master's own namespace) sends what that
 * namespace's stack already routed: handed back, a route through the shim
 * itself brings it straight back here. The kernel stops that loop with its
 * transmit recursion limit (the shim's tx_dropped); without the raise below
 * the hop limit stops ours, where with it the packet would circle for ever.
 */
static __always_inline int ivb_sender_is_shim(struct __sk_buff *skb)
{
	struct ivb_slave_key sk = { .port_id = ivb_port_id, .peer_ifindex = skb->ingress_ifindex };
	/* the control plane's hash, read here only: the way into the stack costs far more */
	__u32 *index = bpf_map_lookup_elem(&ivb_slave_ids, &sk);
	struct ivb_slave *s = index ? ivb_slave_get(*index, skb->ingress_ifindex) : NULL;

	return s && (s->flags & IVB_SLAVE_SAME_NETNS);
}

static __always_inline int ivb_to_master_stack(struct __sk_buff *skb, __u16 proto)
{
	if (!ivb_sender_is_shim(skb))
		ivb_ttl_compensate(skb, proto);
	return IVB_VERDICT(skb, IVB_TC_ACT_OK, IVB_ACT_ROUTE, 0, IVB_DROP_NONE);
}

/* An address of the master device itself (ivb_local_addrs, kept by the agent). */
static __always_inline int ivb_is_master_addr(const struct ivb_frame *f, const struct ivb_addr_key *k)
{
	return bpf_map_lookup_elem(&ivb_local_addrs, k) != NULL;
}

/* Out of the master with the kernel's oif-pinned route and neighbour lookup. */
static __always_inline int ivb_redirect_pinned(struct __sk_buff *skb, const struct ivb_port *port)
{
	return IVB_VERDICT(skb, bpf_redirect_neigh(port->master_ifindex, NULL, 0, 0), IVB_ACT_ROUTE_PINNED,
			   port->master_ifindex, IVB_DROP_NONE);
}

/*
 * Broadcasts of an l3 slave: its NOARP device sends them to its own MAC, so
 * only the address tells. The kernel decides with its oif-pinned route in
 * the master's namespace, not with the slave's prefix (oracle VM, 6.1): the
 * limited broadcast and the master's own subnet broadcasts are RTN_BROADCAST
 * and dropped (the slave's tx_dropped); a broadcast of a subnet the master
 * does not have is plain unicast there and leaves the master, resolved on
 * the wire. 255.255.255.255 is dropped here; the master's subnet broadcasts
 * come out of the FIB as "not forwarded" and bpf_redirect_neigh's route
 * check drops them as the kernel's does (rt_type not unicast or local).
 */
static __always_inline int ivb_is_limited_broadcast(__u32 daddr)
{
	return daddr == 0xffffffff;
}

static __always_inline int ivb_route_v4(struct __sk_buff *skb, const struct ivb_port *port,
					const struct ivb_frame *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + IVB_ETH_HLEN;
	struct bpf_fib_lookup p = {};
	long rc;

	if ((void *)(ip + 1) > data_end)
		return IVB_DROP(skb, IVB_DROP_MALFORMED);
	if (ivb_is_limited_broadcast(ip->daddr))
		return IVB_DROP(skb, IVB_DROP_L3_BROADCAST);

	/*
	 * Ask the master namespace's FIB as its forward path will (input on
	 * the host peer, whose forwarding is on; an output lookup on the master
	 * would need forwarding on the master itself).
	 */
	p.family = AF_INET;
	p.tos = ip->tos;
	p.l4_protocol = ip->protocol;
	p.tot_len = bpf_ntohs(ip->tot_len);
	p.ipv4_src = ip->saddr;
	p.ipv4_dst = ip->daddr;
	p.ifindex = skb->ingress_ifindex;
	rc = bpf_fib_lookup(skb, &p, sizeof(p), BPF_FIB_LOOKUP_SKIP_NEIGH);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		if (p.ifindex != port->master_ifindex)
			/* IPv4 egress is pinned to the master: other devices' routes are ignored */
			return ivb_redirect_pinned(skb, port);
		return ivb_to_master_stack(skb, IVB_ETH_P_IP);
	case BPF_FIB_LKUP_RET_NOT_FWDED:
		/*
		 * local, broadcast, or no route at all: bpf_fib_lookup does not
		 * tell them apart. The kernel's lookup with the master as oif
		 * finds RTN_LOCAL only for the master's own addresses (the stack
		 * takes those); for anything else it routes out of the master,
		 * assuming on-link where nothing matches, and drops broadcasts:
		 * bpf_redirect_neigh does that very lookup.
		 */
		if (ivb_is_master_addr(f, &f->dst))
			return ivb_to_master_stack(skb, IVB_ETH_P_IP);
		return ivb_redirect_pinned(skb, port);
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:	/* the stack sends the ICMP */
		return ivb_to_master_stack(skb, IVB_ETH_P_IP);
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		/* someone turned the peer's forwarding off: the kernel's way still works */
		return ivb_redirect_pinned(skb, port);
	default:
		/* blackhole, unreachable, prohibit: the kernel's route lookup fails too */
		return IVB_DROP(skb, IVB_DROP_NO_ROUTE);
	}
}

/* The master's EUI-64 link-local address (what addrconf gives a device with dev_id 0). */
static __always_inline int ivb_is_master_linklocal(const struct ivb_port *port, const __u8 *a)
{
	const __u8 *m = port->master_mac;

	return a[0] == 0xfe && a[1] == 0x80 && !(a[2] | a[3] | a[4] | a[5] | a[6] | a[7]) &&
	       a[8] == (m[0] ^ 0x02) && a[9] == m[1] && a[10] == m[2] && a[11] == 0xff &&
	       a[12] == 0xfe && a[13] == m[3] && a[14] == m[4] && a[15] == m[5];
}

static __always_inline int ivb_route_v6(struct __sk_buff *skb, const struct ivb_port *port,
					const struct ivb_frame *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + IVB_ETH_HLEN;
	__u8 dst[16];

	/* the header, not the demux key: a frame from :: has no key */
	if ((void *)(ip6 + 1) > data_end)
		return IVB_DROP(skb, IVB_DROP_MALFORMED);
	__builtin_memcpy(dst, &ip6->daddr, 16);
	if (dst[0] == 0xff)
		return IVB_DROP(skb, IVB_DROP_L3_MULTICAST);
	if (!(dst[0] == 0xfe && (dst[1] & 0xc0) == 0x80))
		/* not pinned for global destinations (semantics §3.1): the stack routes it */
		return ivb_to_master_stack(skb, IVB_ETH_P_IPV6);
	/* link-local: the master is the only link the kernel's lookup would use */
	if (ivb_is_master_linklocal(port, dst) || (f->has_key && ivb_is_master_addr(f, &f->dst)))
		return IVB_VERDICT(skb, bpf_redirect(port->master_ifindex, BPF_F_INGRESS), IVB_ACT_TO_MASTER,
				   port->master_ifindex, IVB_DROP_NONE);
	return ivb_redirect_pinned(skb, port);
}

/*
 * An IPv6 destination the master namespace's stack would not forward when an
 * l3 slave's packet is handed to it: a local address of that namespace (a
 * shim slave's, say), or one it has no route for. Asked as its forward path
 * will ask (input on the host peer, whose forwarding is on in l3).
 */
static __always_inline int ivb_local_in_master_ns_v6(struct __sk_buff *skb, const struct ivb_frame *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + IVB_ETH_HLEN;
	struct bpf_fib_lookup p = {};

	if (f->proto != IVB_ETH_P_IPV6 || (void *)(ip6 + 1) > data_end)
		return 0;
	p.family = AF_INET6;
	p.l4_protocol = ip6->nexthdr;
	p.tot_len = bpf_ntohs(ip6->payload_len);
	__builtin_memcpy(p.ipv6_src, &ip6->saddr, 16);
	__builtin_memcpy(p.ipv6_dst, &ip6->daddr, 16);
	p.ifindex = skb->ingress_ifindex;
	return bpf_fib_lookup(skb, &p, sizeof(p), BPF_FIB_LOOKUP_SKIP_NEIGH) == BPF_FIB_LKUP_RET_NOT_FWDED;
}

/* ipvlan_process_outbound(): what an L3/L3S slave sends that no sibling takes. */
static __always_inline int ivb_route_out(struct __sk_buff *skb, const struct ivb_port *port,
					 const struct ivb_frame *f)
{
	if (f->mcast_dst)
		return IVB_DROP(skb, IVB_DROP_L3_MULTICAST);
	if (f->proto == IVB_ETH_P_IP)
		return ivb_route_v4(skb, port, f);
	if (f->proto == IVB_ETH_P_IPV6)
		return ivb_route_v6(skb, port, f);
	/* "Dropped outbound packet type" */
	return IVB_DROP(skb, IVB_DROP_L3_PROTOCOL);
}

#endif /* IVB_ROUTE_H */
