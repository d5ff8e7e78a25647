// SPDX-License-Identifier: GPL-2.0-only
/*
 * TC ingress of the master: the kernel's ipvlan_handle_frame() rx_handler.
 * Frames a slave owns go straight into the slave's namespace with
 * bpf_redirect_peer (GRO kept, no second pass through the stack); L2
 * broadcast/multicast is copied to every up slave; everything else goes to the
 * master's own stack untouched.
 */
/* counters and events of this program are "from the wire" */
#define IVB_PROG_DIR IVB_DIR_FROM_WIRE

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lib/consts.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/demux.h"
#include "lib/fanout.h"
#include "lib/verdict.h"
#include "lib/slowpath.h"

/*
 * ipvlan_external_frame(): a broadcast that carries the master's MAC and a
 * slave's source address is our own slave's frame reflected by the switch;
 * it was already copied to the slaves when sent.
 */
static __always_inline int ivb_is_reflected_own(const struct ivb_frame *f)
{
	return f->src_is_master && f->has_key && ivb_owner_up(&f->src) != 0;
}

/*
 * l3s: unicast IP for a slave goes through the master's stack; an IPv6
 * link-local destination is never forwarded, so it is delivered as in l3.
 */
static __always_inline int ivb_l3s_routed(const struct ivb_frame *f)
{
	if (f->proto == IVB_ETH_P_IP)
		return 1;
	if (f->proto != IVB_ETH_P_IPV6 || f->dad_ns)
		return 0;
	return !(f->dst.addr[0] == 0xfe && (f->dst.addr[1] & 0xc0) == 0x80);
}

/*
 * The master's own packet coming back (a hairpinning switch reflects what
 * the master sent to a slave): the master's stack would take it for a
 * martian (its own source address), the kernel's l3s delivers it. As l3.
 */
static __always_inline int ivb_from_master(const struct ivb_frame *f)
{
	return f->has_key && bpf_map_lookup_elem(&ivb_local_addrs, &f->src) != NULL;
}


SEC("tc")
int ivb_master_ingress(struct __sk_buff *skb)
{
	struct ivb_port *port = ivb_port_get(ivb_port_id);
	struct ivb_frame f;
	struct ivb_owner_ref owner;
	__u32 peer, why;

	ivb_trace_reset();
	if (!port)
		return IVB_PASS(skb, IVB_DROP_NONE);
	/* tagged frames belong to a VLAN device on the master, not to this port */
	if (skb->vlan_present)
		return IVB_PASS(skb, IVB_DROP_NONE);
	ivb_pull_headers(skb);
	if (ivb_parse(skb, ivb_port_id, port->master_mac, &f) < 0)
		return IVB_PASS(skb, IVB_DROP_NONE);
	if (f.proto == IVB_ETH_P_8021Q || f.proto == IVB_ETH_P_8021AD)
		return IVB_PASS(skb, IVB_DROP_NONE);

	if (f.mcast_dst) {
		if (port->mode == IVB_MODE_L2) {
			/* every up slave gets a copy, the master the original */
			if (!ivb_is_reflected_own(&f))
				ivb_fanout(skb, ivb_port_id, port->nr_slaves, 0);
			return IVB_PASS(skb, IVB_DROP_NONE);
		}
		/*
		 * L3 looks at the key only, whatever the MAC (ipvlan_handle_mode_l3):
		 * a multicast/broadcast IP never matches a slave, an ARP or DAD NS
		 * for a slave's address is diverted to it (the NOARP slave ignores
		 * it). L3S leaves such frames to the master.
		 */
		if (port->mode == IVB_MODE_L3S)
			return IVB_PASS(skb, IVB_DROP_NONE);
	}
	if (!f.has_key)
		return IVB_PASS(skb, IVB_DROP_NONE);
	if (port->mode == IVB_MODE_L3S && f.proto == IVB_ETH_P_ARP)
		return IVB_PASS(skb, IVB_DROP_NONE);
	peer = ivb_owner(&f.dst, &owner, &why);
	if (!peer) {
		if (port->mode == IVB_MODE_L2 && !f.mcast_dst && (f.proto == IVB_ETH_P_ARP || f.src_is_master))
			ivb_copy_unknown_from_wire(skb, &f.dst);
		return IVB_PASS(skb, why);
	}
	/*
	 * unicast for another host's MAC (promiscuous NIC, bridge port master):
	 * eth_type_trans() on the master made it PACKET_OTHERHOST and the
	 * kernel's slave inherits that and ignores it; bpf_redirect_peer would
	 * scrub it to PACKET_HOST and the slave take it as its own
	 */
	if (!f.mcast_dst && !f.dst_is_master)
		return IVB_DROP(skb, IVB_DROP_OTHER_HOST);
	if (port->mode == IVB_MODE_L3S && ivb_l3s_routed(&f) && !ivb_from_master(&f))
		/*
		 * l3s: up the master's stack, which routes it to the slave by
		 * the port's table (`ip rule iif MASTER`) via the host-side peer:
		 * PREROUTING, FORWARD and POSTROUTING of the master's namespace
		 * see it, conntrack and NAT work both ways (the kernel's l3s
		 * reaches the same hooks, with INPUT in place of FORWARD)
		 */
		return IVB_VERDICT(skb, IVB_TC_ACT_OK, IVB_ACT_ROUTE, peer, IVB_DROP_NONE);
	return ivb_deliver(skb, &owner, peer, 0);
}

char LICENSE[] SEC("license") = "GPL";
