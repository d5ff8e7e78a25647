// SPDX-License-Identifier: GPL-2.0-only
/*
 * The kernel driver's netlink-time refusals, which a veth cannot make by
 * itself, as a BPF LSM program on netlink_send:
 *  - ipvlan's address validator notifiers: adding an address that another
 *    slave of the same port already owns fails with EADDRINUSE
 *    (semantics §4, "Address already assigned to an ipvlan device");
 *  - ipvlan has no ndo_set_mac_address: changing a slave's MAC fails with
 *    EOPNOTSUPP (semantics §1.2).
 * Only requests about devices in ivb_guard (our slaves, where they live now)
 * are looked at; everything else passes untouched.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "lib/maps.h"

#define IVB_NETLINK_ROUTE 0
#define IVB_RTM_NEWLINK 16
#define IVB_RTM_SETLINK 19
#define IVB_RTM_NEWADDR 20
#define IVB_IFA_ADDRESS 1
#define IVB_IFA_LOCAL 2
#define IVB_IFLA_ADDRESS 1
#define IVB_IFLA_MASTER 10
#define IVB_SYS_AF_INET 2
#define IVB_SYS_AF_INET6 10
#define IVB_EADDRINUSE 98
#define IVB_EOPNOTSUPP 95
#define IVB_EBUSY 16
#define IVB_EINVAL 22
#define IVB_NLMSG_HDRLEN 16
#define IVB_IFADDRMSG_LEN 8
#define IVB_IFINFOMSG_LEN 16
/* attributes looked at per message: iproute2 sends a handful */
#define IVB_GUARD_MAX_ATTRS 24

struct ivb_nlattr_hdr {
	__u16 len;
	__u16 type;
};

static __always_inline struct ivb_guard_entry *ivb_guard_lookup(struct sock *sk, __u32 ifindex)
{
	struct ivb_guard_key k = {
		.netns_ino = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum),
		.ifindex = ifindex,
	};

	return bpf_map_lookup_elem(&ivb_guard, &k);
}

/* Offset of the first attribute of `type` in [off, end), or 0. */
static __always_inline __u32 ivb_find_attr(const unsigned char *data, __u32 off, __u32 end, __u16 type)
{
	struct ivb_nlattr_hdr a;

	for (int i = 0; i < IVB_GUARD_MAX_ATTRS; i++) {
		if (off + sizeof(a) > end)
			return 0;
		if (bpf_probe_read_kernel(&a, sizeof(a), data + off))
			return 0;
		if (a.len < sizeof(a))
			return 0;
		if (a.type == type)
			return off;
		off += (a.len + 3) & ~3u;
	}
	return 0;
}

static __always_inline int ivb_check_newaddr(struct sock *sk, const unsigned char *data, __u32 msg_len)
{
	struct ifaddrmsg ifa;
	struct ivb_guard_entry *g;
	struct ivb_addr_key key = {};
	struct ivb_addr_owner *owner;
	__u32 at, alen, start = IVB_NLMSG_HDRLEN + IVB_IFADDRMSG_LEN;

	if (bpf_probe_read_kernel(&ifa, sizeof(ifa), data + IVB_NLMSG_HDRLEN))
		return 0;
	g = ivb_guard_lookup(sk, ifa.ifa_index);
	if (!g)
		return 0;
	if (ifa.ifa_family == IVB_SYS_AF_INET) {
		key.family = IVB_AF_INET;
		alen = 4;
	} else if (ifa.ifa_family == IVB_SYS_AF_INET6) {
		key.family = IVB_AF_INET6;
		alen = 16;
	} else {
		return 0;
	}
	/* the local address is the one ipvlan learns (IFA_ADDRESS only without IFA_LOCAL) */
	at = ivb_find_attr(data, start, msg_len, IVB_IFA_LOCAL);
	if (!at)
		at = ivb_find_attr(data, start, msg_len, IVB_IFA_ADDRESS);
	if (!at || at + sizeof(struct ivb_nlattr_hdr) + alen > msg_len)
		return 0;
	if (alen == 4)
		bpf_probe_read_kernel(key.addr, 4, data + at + sizeof(struct ivb_nlattr_hdr));
	else
		bpf_probe_read_kernel(key.addr, 16, data + at + sizeof(struct ivb_nlattr_hdr));
	key.port_id = g->port_id;
	owner = bpf_map_lookup_elem(&ivb_addrs, &key);
	if (owner && owner->peer_ifindex != g->peer_ifindex)
		return -IVB_EADDRINUSE;
	return 0;
}

/*
 * Link changes. For a slave: a MAC change is refused (no ndo_set_mac_address)
 * and so is enslaving it (ipvlan slaves carry IFF_NO_RX_HANDLER). For a
 * master (entry with peer_ifindex 0): enslaving it to a bridge or bond fails
 * with EBUSY, since the port's rx_handler holds the device.
 */
static __always_inline int ivb_check_link(struct sock *sk, const unsigned char *data, __u32 msg_len)
{
	struct ifinfomsg ifi;
	struct ivb_guard_entry *g;
	__u32 start = IVB_NLMSG_HDRLEN + IVB_IFINFOMSG_LEN;
	__u32 at;
	__u32 master = 0;

	if (bpf_probe_read_kernel(&ifi, sizeof(ifi), data + IVB_NLMSG_HDRLEN))
		return 0;
	if (ifi.ifi_index <= 0)
		return 0;
	g = ivb_guard_lookup(sk, ifi.ifi_index);
	if (!g)
		return 0;
	at = ivb_find_attr(data, start, msg_len, IVB_IFLA_MASTER);
	if (at && at + sizeof(struct ivb_nlattr_hdr) + 4 <= msg_len)
		bpf_probe_read_kernel(&master, 4, data + at + sizeof(struct ivb_nlattr_hdr));
	if (g->peer_ifindex == 0)
		return master ? -IVB_EBUSY : 0;
	if (master)
		return -IVB_EINVAL;
	if (ivb_find_attr(data, start, msg_len, IVB_IFLA_ADDRESS))
		return -IVB_EOPNOTSUPP;
	return 0;
}

SEC("lsm/netlink_send")
int BPF_PROG(ivb_netlink_send, struct sock *sk, struct sk_buff *skb)
{
	struct nlmsghdr nlh;
	const unsigned char *data;
	__u32 len;

	if (BPF_CORE_READ(sk, sk_protocol) != IVB_NETLINK_ROUTE)
		return 0;
	data = BPF_CORE_READ(skb, data);
	len = BPF_CORE_READ(skb, len);
	if (len < IVB_NLMSG_HDRLEN + IVB_IFADDRMSG_LEN)
		return 0;
	if (bpf_probe_read_kernel(&nlh, sizeof(nlh), data))
		return 0;
	if (nlh.nlmsg_len > len)
		return 0;
	if (nlh.nlmsg_type == IVB_RTM_NEWADDR)
		return ivb_check_newaddr(sk, data, nlh.nlmsg_len);
	if ((nlh.nlmsg_type == IVB_RTM_NEWLINK || nlh.nlmsg_type == IVB_RTM_SETLINK) &&
	    nlh.nlmsg_len >= IVB_NLMSG_HDRLEN + IVB_IFINFOMSG_LEN)
		return ivb_check_link(sk, data, nlh.nlmsg_len);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
