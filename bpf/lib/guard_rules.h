/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The netlink guard's decisions on one rtnetlink request (bpf/guard.bpf.c):
 * the kernel driver's netlink-time refusals, which a veth cannot make by
 * itself. Kept apart from the LSM hook so that a test-runnable program
 * (bpf/guard_rules_test.bpf.c) runs this very code on kernels that refuse
 * BPF LSM programs.
 *
 * The request is read with bpf_probe_read_kernel from DATA (the skb's data in
 * the hook; the test frame in the test program). Only requests about devices
 * in ivb_guard (our masters and slaves, where they live now) are refused:
 *  - RTM_NEWADDR on a slave of an address another slave of the same port owns:
 *    EADDRINUSE (ipvlan's address validator notifiers, semantics §4). The
 *    validators run for ipvlan devices only: the master may take any address.
 *  - RTM_NEWLINK/RTM_SETLINK of a slave with a MAC: EOPNOTSUPP (no
 *    ndo_set_mac_address, semantics §1.2); with a master (bridge, bond):
 *    EINVAL (ipvlan slaves carry IFF_NO_RX_HANDLER).
 *  - the same with a master as the device: EBUSY (the port's rx_handler
 *    holds it).
 *  - RTM_NEWLINK of a macvlan/macvtap whose lower device is a slave: EINVAL;
 *    whose lower device is a master: EBUSY (macvlan_port_create and
 *    netdev_rx_handler_register, for the same two reasons).
 */
#ifndef IVB_GUARD_RULES_H
#define IVB_GUARD_RULES_H

#include "maps.h"

#define IVB_RTM_NEWLINK 16
#define IVB_RTM_SETLINK 19
#define IVB_RTM_NEWADDR 20
#define IVB_IFA_ADDRESS 1
#define IVB_IFA_LOCAL 2
#define IVB_IFLA_ADDRESS 1
#define IVB_IFLA_LINK 5
#define IVB_IFLA_MASTER 10
#define IVB_IFLA_LINKINFO 18
#define IVB_IFLA_LINK_NETNSID 37
#define IVB_IFLA_INFO_KIND 1
#define IVB_NLA_TYPE_MASK 0x3fff /* without NLA_F_NESTED, NLA_F_NET_BYTEORDER */
#define IVB_SYS_AF_INET 2
#define IVB_SYS_AF_INET6 10
#define IVB_EADDRINUSE 98
#define IVB_EOPNOTSUPP 95
#define IVB_EBUSY 16
#define IVB_EINVAL 22
/* attributes looked at per message (and per nest): iproute2 sends a handful */
#define IVB_GUARD_MAX_ATTRS 24

/* the wire layouts of <linux/netlink.h>, <linux/if_addr.h>, <linux/rtnetlink.h> */
struct ivb_nlmsg_hdr {
	__u32 len;
	__u16 type;
	__u16 flags;
	__u32 seq;
	__u32 pid;
};

struct ivb_nl_ifaddr {
	__u8 family;
	__u8 prefixlen;
	__u8 flags;
	__u8 scope;
	__u32 index;
};

struct ivb_nl_ifinfo {
	__u8 family;
	__u8 pad;
	__u16 type;
	__s32 index;
	__u32 flags;
	__u32 change;
};

struct ivb_nlattr_hdr {
	__u16 len;
	__u16 type;
};

/* "macvlan\0" and "macvtap\0" as they lie in memory (little endian) */
#define IVB_KIND_MACVLAN 0x006e616c7663616dULL
#define IVB_KIND_MACVTAP 0x007061747663616dULL

static __always_inline struct ivb_guard_entry *ivb_guard_lookup(__u32 netns_ino, __u32 ifindex)
{
	struct ivb_guard_key k = {
		.netns_ino = netns_ino,
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
		if ((a.type & IVB_NLA_TYPE_MASK) == type)
			return off;
		off += (a.len + 3) & ~3u;
	}
	return 0;
}

/* The u32 payload of the first attribute of `type`, if there is one. */
static __always_inline bool ivb_attr_u32(const unsigned char *data, __u32 off, __u32 end, __u16 type, __u32 *val)
{
	__u32 at = ivb_find_attr(data, off, end, type);

	if (!at || at + sizeof(struct ivb_nlattr_hdr) + 4 > end)
		return false;
	return !bpf_probe_read_kernel(val, 4, data + at + sizeof(struct ivb_nlattr_hdr));
}

static __always_inline int ivb_check_newaddr(__u32 netns_ino, const unsigned char *data, __u32 msg_len)
{
	struct ivb_nl_ifaddr ifa;
	struct ivb_guard_entry *g;
	struct ivb_addr_key key = {};
	struct ivb_addr_owner *owner;
	__u32 at, alen, start = sizeof(struct ivb_nlmsg_hdr) + sizeof(ifa);

	if (msg_len < start)
		return 0;
	if (bpf_probe_read_kernel(&ifa, sizeof(ifa), data + sizeof(struct ivb_nlmsg_hdr)))
		return 0;
	g = ivb_guard_lookup(netns_ino, ifa.index);
	/* the validators are ipvlan's: a master takes any address, also a slave's */
	if (!g || g->peer_ifindex == 0)
		return 0;
	if (ifa.family == IVB_SYS_AF_INET) {
		key.family = IVB_AF_INET;
		alen = 4;
	} else if (ifa.family == IVB_SYS_AF_INET6) {
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
	owner = ivb_addr_lookup(&key);
	if (owner && owner->peer_ifindex != g->peer_ifindex)
		return -IVB_EADDRINUSE;
	return 0;
}

/*
 * A new macvlan/macvtap on one of our devices: the kernel's macvlan registers
 * an rx_handler on its lower device, which a slave refuses (EINVAL) and a
 * master already has (EBUSY).
 */
static __always_inline int ivb_check_new_upper(__u32 netns_ino, const unsigned char *data, __u32 start, __u32 msg_len)
{
	struct ivb_guard_entry *g;
	__u32 lower = 0, at, nest_len = 0;
	__u16 hdr_len;
	__u64 kind = 0;

	if (!ivb_attr_u32(data, start, msg_len, IVB_IFLA_LINK, &lower) || !lower)
		return 0;
	/* a lower device in another namespace: not one this request can name by ifindex here */
	if (ivb_find_attr(data, start, msg_len, IVB_IFLA_LINK_NETNSID))
		return 0;
	g = ivb_guard_lookup(netns_ino, lower);
	if (!g)
		return 0;
	at = ivb_find_attr(data, start, msg_len, IVB_IFLA_LINKINFO);
	if (!at || bpf_probe_read_kernel(&hdr_len, sizeof(hdr_len), data + at))
		return 0;
	nest_len = at + hdr_len;
	if (nest_len > msg_len)
		return 0;
	at = ivb_find_attr(data, at + sizeof(struct ivb_nlattr_hdr), nest_len, IVB_IFLA_INFO_KIND);
	if (!at || bpf_probe_read_kernel(&hdr_len, sizeof(hdr_len), data + at))
		return 0;
	/*
	 * "macvlan"/"macvtap": 7 bytes (iproute2 sends no NUL; the attribute's
	 * padding follows) or 8 with the NUL (libmnl's mnl_attr_put_strz, pyroute2)
	 */
	if (hdr_len != sizeof(struct ivb_nlattr_hdr) + 7 && hdr_len != sizeof(struct ivb_nlattr_hdr) + 8)
		return 0;
	if (at + sizeof(struct ivb_nlattr_hdr) + 8 > nest_len)
		return 0;
	if (bpf_probe_read_kernel(&kind, sizeof(kind), data + at + sizeof(struct ivb_nlattr_hdr)))
		return 0;
	if (hdr_len == sizeof(struct ivb_nlattr_hdr) + 7)
		kind &= 0x00ffffffffffffffULL;
	if (kind != IVB_KIND_MACVLAN && kind != IVB_KIND_MACVTAP)
		return 0;
	return g->peer_ifindex == 0 ? -IVB_EBUSY : -IVB_EINVAL;
}

/*
 * Link changes. For a slave: a MAC change is refused (no ndo_set_mac_address)
 * and so is enslaving it (ipvlan slaves carry IFF_NO_RX_HANDLER). For a
 * master (entry with peer_ifindex 0): enslaving it to a bridge or bond fails
 * with EBUSY, since the port's rx_handler holds the device.
 */
static __always_inline int ivb_check_link(__u32 netns_ino, const unsigned char *data, __u32 msg_len, __u16 type)
{
	struct ivb_nl_ifinfo ifi;
	struct ivb_guard_entry *g;
	__u32 start = sizeof(struct ivb_nlmsg_hdr) + sizeof(ifi);
	__u32 master = 0;

	if (msg_len < start)
		return 0;
	if (bpf_probe_read_kernel(&ifi, sizeof(ifi), data + sizeof(struct ivb_nlmsg_hdr)))
		return 0;
	if (ifi.index <= 0)
		return type == IVB_RTM_NEWLINK ? ivb_check_new_upper(netns_ino, data, start, msg_len) : 0;
	g = ivb_guard_lookup(netns_ino, ifi.index);
	if (!g)
		return 0;
	ivb_attr_u32(data, start, msg_len, IVB_IFLA_MASTER, &master);
	if (g->peer_ifindex == 0)
		return master ? -IVB_EBUSY : 0;
	if (master)
		return -IVB_EINVAL;
	if (ivb_find_attr(data, start, msg_len, IVB_IFLA_ADDRESS))
		return -IVB_EOPNOTSUPP;
	return 0;
}

/* 0 to let the request through, or the kernel's -errno for it. */
static __always_inline int ivb_guard_decide(__u32 netns_ino, const unsigned char *data, __u32 len)
{
	struct ivb_nlmsg_hdr nlh;

	if (len < sizeof(nlh) || bpf_probe_read_kernel(&nlh, sizeof(nlh), data))
		return 0;
	if (nlh.len > len)
		return 0;
	if (nlh.type == IVB_RTM_NEWADDR)
		return ivb_check_newaddr(netns_ino, data, nlh.len);
	if (nlh.type == IVB_RTM_NEWLINK || nlh.type == IVB_RTM_SETLINK)
		return ivb_check_link(netns_ino, data, nlh.len, nlh.type);
	return 0;
}

#endif /* IVB_GUARD_RULES_H */
