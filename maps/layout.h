/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The one source of truth for every map key and value of ipvlan-bpf.
 *
 * Included by the BPF programs (bpf/lib/maps.h declares the maps with these
 * types) and compiled into bpf/layout.bpf.o, whose BTF the TypeScript codecs
 * in maps/generated.ts are generated from (npm run gen:maps). Never keep a
 * hand-written copy of these structs anywhere else.
 *
 * Every struct is padded explicitly so that C, BTF and the generated
 * TypeScript agree byte for byte without compiler-inserted holes.
 */
#ifndef IVB_MAPS_LAYOUT_H
#define IVB_MAPS_LAYOUT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/*
 * Sizes the control plane indexes arrays with (bpf/lib/consts.h says why
 * each is what it is)
 */
enum ivb_size {
	IVB_SIZE_PORTS = 1024,          /* ivb_ports entries: port ids 1..1023 */
	IVB_SIZE_FANOUT_PER_PORT = 256, /* fan-out slots of one port in ivb_fanout_slots */
	IVB_SIZE_SLAVES = 65536,        /* ivb_slaves entries: slave indexes 1..65535 (__u16) */
	IVB_SIZE_MC_FILTER_BITS = 256,  /* bits of a slave's multicast filter (IPVLAN_MAC_FILTER_SIZE) */
	IVB_SIZE_COUNTER_ROWS = 37,     /* rows of a device's counter block: the lines of maps/counter_rows.def */
};

/* ipvlan's own numbers (include/uapi/linux/if_link.h: IPVLAN_MODE_*) */
enum ivb_mode {
	IVB_MODE_L2 = 0,
	IVB_MODE_L3 = 1,
	IVB_MODE_L3S = 2,
};

/* ipvlan's flag bits (IPVLAN_F_PRIVATE, IPVLAN_F_VEPA); 0 is "bridge" */
enum ivb_port_flags {
	IVB_F_PRIVATE = 0x01,
	IVB_F_VEPA = 0x02,
};

/* bits of ivb_port.options: ours, beyond the kernel driver */
enum ivb_port_options {
	/*
	 * a slave may send only from its own learned addresses (on by default;
	 * off gives the kernel's behaviour, which validates nothing)
	 */
	IVB_OPT_SOURCE_VALIDATION = 0x01,
};

enum ivb_family {
	IVB_AF_INET = 4,
	IVB_AF_INET6 = 6,
};

/* bits of ivb_slave.flags */
enum ivb_slave_flags {
	IVB_SLAVE_UP = 0x01, /* admin-up: only running slaves own traffic (ipvlan_open hashes) */
	/*
	 * the slave end is in the master's own namespace (a "shim" slave):
	 * bpf_redirect_peer refuses a peer in the same namespace, so frames go
	 * through the host-side peer's egress instead
	 */
	IVB_SLAVE_SAME_NETNS = 0x02,
};

/*
 * A master ("port" in the kernel driver) by its id: the index of its
 * ivb_ports entry (an ARRAY: ids are dense, 1..IVB_MAX_PORTS-1)
 */
struct ivb_port_key {
	__u32 port_id;
};

/* value of ivb_ports: the port-wide settings every slave reports */
struct ivb_port {
	__u32 master_ifindex; /* in the master's namespace */
	__u8 master_mac[6];   /* the MAC all slaves share */
	__u8 mode;            /* enum ivb_mode */
	__u8 flags;           /* enum ivb_port_flags */
	__u32 nr_slaves;      /* slots in use in ivb_fanout for this port */
	__u32 options;        /* enum ivb_port_options */
};

/*
 * An address of a port, either family: the datapath's parsed key, and the
 * key of ivb_local_addrs and ivb_unknown. Its tail from port_id on is the
 * compact key of the demux table of its family (ivb_addrs4: 8 bytes,
 * ivb_addrs6: 20), so a frame's key is looked up where it lies, uncopied.
 */
struct ivb_addr_key {
	__u8 family; /* enum ivb_family */
	__u8 pad[3];
	__u32 port_id;
	__u8 addr[16]; /* IPv4 in the first 4 bytes, network order */
};

/* key of ivb_addrs4: an IPv4 address learned on a slave, per port (the tail of an ivb_addr_key) */
struct ivb_addr4_key {
	__u32 port_id;
	__u8 addr[4]; /* network order */
};

/* key of ivb_addrs6: an IPv6 address learned on a slave, per port (the tail of an ivb_addr_key) */
struct ivb_addr6_key {
	__u32 port_id;
	__u8 addr[16];
};

_Static_assert(__builtin_offsetof(struct ivb_addr_key, port_id) == 4 &&
		       __builtin_offsetof(struct ivb_addr_key, addr) == 4 + __builtin_offsetof(struct ivb_addr4_key, addr) &&
		       __builtin_offsetof(struct ivb_addr4_key, addr) == __builtin_offsetof(struct ivb_addr6_key, addr) &&
		       sizeof(struct ivb_addr4_key) == 8 && sizeof(struct ivb_addr6_key) == 20,
	       "the compact address keys are the tail of struct ivb_addr_key");

/* value of ivb_addrs4 and ivb_addrs6: who owns it */
struct ivb_addr_owner {
	__u32 peer_ifindex; /* the slave's host-side veth peer, in the master's namespace */
	__u8 prefixlen;     /* as configured on the slave (shown by link show) */
	__u8 pad;
	__u16 slave;        /* the owner's index in ivb_slaves (0: none, as for the master's own addresses) */
};

/*
 * A slave by its host-side peer: key of ivb_slave_ids (the control plane's
 * way from a peer to the slave's index) and of ivb_punt_budget
 */
struct ivb_slave_key {
	__u32 port_id;
	__u32 peer_ifindex;
};

/*
 * value of ivb_slaves, an ARRAY indexed by the slave's index (stable for the
 * slave's life, given by the control plane; 0 is never used). An entry
 * whose peer_ifindex is 0 is free.
 */
struct ivb_slave {
	__u32 dev_id;       /* the kernel's per-port dev_id: 1..0xfffd, folded into the IPv6 link-local */
	__u32 flags;        /* enum ivb_slave_flags */
	__u32 mtu;          /* the slave end's MTU: frames bigger than it are not delivered */
	__u32 peer_ifindex; /* whose entry this is: checked against the address entry that led here */
	__u32 port_id;
	__u32 pad;
};

/*
 * Slot N of a port's broadcast/multicast fan-out list: ivb_fanout_slots is
 * an ARRAY whose index is port_id * IVB_MAX_FANOUT + slot
 */
struct ivb_fanout_key {
	__u32 port_id;
	__u32 slot;
};

/* value of ivb_fanout_slots (peer_ifindex 0: an empty slot) */
struct ivb_fanout_entry {
	__u32 peer_ifindex;
	__u16 slave; /* its index in ivb_slaves */
	__u16 pad;
};

/*
 * value of ivb_mc_filters, an ARRAY indexed by the slave's index: the
 * kernel's per-slave multicast filter (ipvlan_set_multicast_mac_filter), a
 * 256-bit set indexed by an 8-bit hash of destination MAC bytes 2..5
 * (bpf/lib/mcfilter.h). The agent keeps it from the slave's link-layer
 * multicast list and its PROMISC/ALLMULTI flags.
 */
struct ivb_mc_filter {
	__u32 kept;    /* 0: no list read yet, every copy goes through (as before the agent looked) */
	__u32 pad;
	__u8 bits[32]; /* bit h % 8 of bits[h / 8]: a group whose hash is h was joined */
};

/* key of ivb_guard: a slave end where it lives now (for the netlink guard) */
struct ivb_guard_key {
	__u32 netns_ino; /* inode of the slave's current network namespace */
	__u32 ifindex;   /* the slave end's ifindex there */
};

/* value of ivb_guard */
struct ivb_guard_entry {
	__u32 port_id;
	__u32 peer_ifindex; /* 0: the key is the port's master itself */
};

/* value of ivb_layout: sha256 of the generated layouts (maps/generated.ts) */
struct ivb_layout_id {
	__u8 sha256[32];
};

/* what the datapath did with a frame (ivb_decision.action) */
enum ivb_action {
	IVB_ACT_PASS = 0,         /* to the master's own stack, untouched */
	IVB_ACT_DELIVER = 1,      /* into a slave (target: its host-side peer) */
	IVB_ACT_TO_WIRE = 2,      /* out of the master (target: master) */
	IVB_ACT_TO_MASTER = 3,    /* into the master's stack as if received (target: master) */
	IVB_ACT_ROUTE = 4,        /* to the master namespace's routing via the host peer */
	IVB_ACT_ROUTE_PINNED = 5, /* routed out of the master by bpf_redirect_neigh (target: master) */
	IVB_ACT_DROP = 6,         /* dropped (reason says why) */
	IVB_ACT_FANOUT_COPY = 7,  /* a broadcast/multicast copy to a slave (counters only) */
	IVB_ACT_HELD = 8,         /* held for the agent's slow path (ivb_slowpath): it comes back re-sent */
};

/* which program counted: frames from the wire, or frames a slave sent */
enum ivb_direction {
	IVB_DIR_FROM_WIRE = 0,
	IVB_DIR_FROM_SLAVE = 1,
	/* the receiving side of a slave-to-slave frame (row keyed by the receiver) */
	IVB_DIR_FROM_SIBLING = 2,
};

/*
 * ivb_counters is a PERCPU_ARRAY of counter blocks, one per device, indexed
 * by the device's slot: a master's is its port id (0..IVB_SIZE_PORTS-1), a
 * slave's IVB_SIZE_PORTS + its slave index; the last IVB_SIZE_PORTS blocks
 * are, per port id, the sums of its deleted slaves' blocks (so that a port's
 * totals never go back when a slave goes; the control plane adds them). A block is IVB_SIZE_COUNTER_ROWS
 * struct ivb_counter rows, one per (direction, action, reason) of
 * maps/counter_rows.def (enum ivb_counter_row).
 */
enum ivb_counter_row {
#define IVB_COUNTER_ROW(row, dir, act, reason) IVB_ROW_##dir##__##act##__##reason = row,
#define IVB_COUNTER_OTHER(row, dir) IVB_ROW_##dir##__OTHER = row,
#include "counter_rows.def"
#undef IVB_COUNTER_ROW
#undef IVB_COUNTER_OTHER
};

/* every row of the table has its place in a block, and every place a row */
enum ivb_counter_rows_listed {
	IVB_COUNTER_ROWS_LISTED = 0
#define IVB_COUNTER_ROW(row, dir, act, reason) +1
#define IVB_COUNTER_OTHER(row, dir) +1
#include "counter_rows.def"
#undef IVB_COUNTER_ROW
#undef IVB_COUNTER_OTHER
};
_Static_assert(IVB_COUNTER_ROWS_LISTED == IVB_SIZE_COUNTER_ROWS,
	       "maps/counter_rows.def and IVB_SIZE_COUNTER_ROWS disagree");

/* a row of a counter block (value of ivb_counters: IVB_SIZE_COUNTER_ROWS of them) */
struct ivb_counter {
	__u64 packets;
	__u64 bytes;
};

/* ivb_settings[0]: runtime switches (no reload needed) */
struct ivb_settings {
	__u32 events;          /* 0 off, 1 drops only, 2 every decision */
	__u32 events_per_sec;  /* per CPU; 0 = 1000 */
};

/* an event in the ivb_events ring buffer (monitor) */
struct ivb_event {
	__u64 ts_ns;      /* bpf_ktime_get_ns */
	__u32 port_id;
	__u32 ifindex;    /* the device the decision is counted on: a slave's host-side peer, 0 for the master */
	__u32 target;     /* target ifindex of the decision */
	__u32 len;        /* frame length */
	__u8 direction;
	__u8 action;
	__u8 reason;
	__u8 cap_len;     /* bytes of the frame in head[] */
	__u8 head[64];    /* the frame's first bytes (headers) */
	__u8 pad[4];
};

/*
 * The slow path (bpf/lib/slowpath.h): a slave's frame whose source, or whose
 * destination in the slave's own subnet, no slave is known to own yet is held
 * for the agent instead of being judged on a table that may lag the kernel by
 * a netlink event. The agent re-reads the port, then sends the frame again
 * from the slave, where it meets the fresh table.
 */
#define IVB_PUNT_MAX_FRAME 1536

/* ivb_slowpath_state[0]: is an agent consuming the slow path? */
struct ivb_slowpath_state {
	__u64 consumer_until_ns; /* CLOCK_MONOTONIC ns up to which the agent's heartbeat holds; 0: none */
};

/* a frame held for the agent (ivb_slowpath ring buffer) */
struct ivb_punt {
	__u64 ts_ns;   /* bpf_ktime_get_ns when held */
	__u32 port_id;
	__u32 ifindex; /* the sending slave's host-side peer */
	__u32 len;     /* bytes of the frame in frame[] */
	__u8 reason;   /* IVB_DROP_UNKNOWN_SOURCE or IVB_DROP_UNKNOWN_DEST */
	__u8 family;   /* of addr: enum ivb_family */
	__u8 pad[2];
	__u8 addr[16]; /* the address no slave was known to own (with port_id and family: its ivb_addr_key) */
	__u8 frame[IVB_PUNT_MAX_FRAME];
};

/* value of ivb_unknown (key: struct ivb_addr_key): the agent checked it, no slave owns it */
struct ivb_unknown_entry {
	__u64 checked_ns; /* CLOCK_MONOTONIC; the datapath trusts it for IVB_UNKNOWN_TTL_NS */
};

/* why (maps/drop_reasons.def is the table: number, name, label, text) */
enum ivb_drop_reason {
#define IVB_REASON(num, name, label, text) IVB_DROP_##name = num,
#include "drop_reasons.def"
#undef IVB_REASON
};

/* ivb_trace: the last decision of a program instance loaded for tests or "explain" */
struct ivb_decision {
	__u32 action;         /* enum ivb_action */
	__u32 target_ifindex; /* where it went (0 for the stack / a drop) */
	__u32 reason;         /* enum ivb_drop_reason */
	__u32 fanout;         /* broadcast/multicast copies attempted */
};

#endif /* IVB_MAPS_LAYOUT_H */
