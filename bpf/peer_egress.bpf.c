// SPDX-License-Identifier: GPL-2.0-only
/*
 * TC egress of a slave's host-side veth peer: what goes into the slave.
 * In l3s, traffic from the wire to a slave is routed by the master's
 * namespace (master_ingress.bpf.c passes it up, the port's table forwards it
 * via this peer), and forwarding takes one off the TTL / hop limit; the
 * kernel's l3s delivers it locally and does not. Raising it by one here,
 * for packets that entered on the master, gives the slave what was sent,
 * also after a DNAT in PREROUTING. Everything else passes untouched.
 */
/* counters and events of this program would be "from the wire"; it keeps none */
#define IVB_PROG_DIR IVB_DIR_FROM_WIRE

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/consts.h"
#include "lib/maps.h"
#include "lib/route.h"

/* unicast (not link-local) IP: what l3s forwards to a slave */
static __always_inline int ivb_forwarded_unicast(struct __sk_buff *skb, __u16 proto)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (proto == IVB_ETH_P_IP) {
		struct iphdr *ip = data + IVB_ETH_HLEN;

		if ((void *)(ip + 1) > data_end)
			return 0;
		/* multicast and the limited broadcast are not forwarded to a slave */
		return (bpf_ntohl(ip->daddr) >> 28) != 0xe && ip->daddr != 0xffffffff;
	}
	if (proto == IVB_ETH_P_IPV6) {
		struct ipv6hdr *ip6 = data + IVB_ETH_HLEN;
		__u8 a0, a1;

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		a0 = ip6->daddr.in6_u.u6_addr8[0];
		a1 = ip6->daddr.in6_u.u6_addr8[1];
		return a0 != 0xff && !(a0 == 0xfe && (a1 & 0xc0) == 0x80);
	}
	return 0;
}

SEC("tc")
int ivb_peer_egress(struct __sk_buff *skb)
{
	struct ivb_port *port = ivb_port_get(ivb_port_id);
	__u16 proto = bpf_ntohs(skb->protocol);

	/* forwarded by the master's namespace: it entered on the master (locally made packets have no input device) */
	if (!port || port->mode != IVB_MODE_L3S || skb->ingress_ifindex != port->master_ifindex)
		return IVB_TC_ACT_OK;
	if (!ivb_forwarded_unicast(skb, proto))
		return IVB_TC_ACT_OK;
	ivb_ttl_compensate(skb, proto);
	return IVB_TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
