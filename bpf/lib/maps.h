/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Every map, declared once. Keys and values come from maps/layout.h. All maps
 * are pinned by name under the loader's pin root (/sys/fs/bpf/ipvlan-bpf/maps),
 * so every program instance of every master shares them and they survive
 * agent and CLI restarts; the key carries the port id where it matters.
 */
#ifndef IVB_MAPS_H
#define IVB_MAPS_H

#include "consts.h"
#include "../../maps/layout.h"

/*
 * port id -> port-wide mode, flags, master ifindex and MAC. Port ids are
 * dense (the control plane gives the smallest free one), so an ARRAY: the
 * verifier inlines its lookup, no hashing per frame. An entry whose
 * master_ifindex is 0 is no port (arrays have no delete).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, IVB_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct ivb_port);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_ports SEC(".maps");

/* The port's entry, or NULL when the port is gone (a zeroed slot). */
static __always_inline struct ivb_port *ivb_port_get(__u32 port_id)
{
	struct ivb_port *port = bpf_map_lookup_elem(&ivb_ports, &port_id);

	return port && port->master_ifindex ? port : NULL;
}

/*
 * (port, address) -> owning slave: the demux table (the kernel's port hash),
 * one per family so that an IPv4 key is 8 bytes (hashed as two words,
 * compared as one u64) rather than the 24 an IPv6 one needs
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IVB_MAX_ADDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ivb_addr4_key);
	__type(value, struct ivb_addr_owner);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_addrs4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IVB_MAX_ADDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ivb_addr6_key);
	__type(value, struct ivb_addr_owner);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_addrs6 SEC(".maps");

/*
 * The owner entry of an address, from the table of its family: one lookup,
 * the key where it lies. The two lookups must stay two calls: merged into
 * one call with the map chosen at run time (clang sinks calls that differ
 * only in their operands), the verifier can no longer inline the lookup and
 * every frame pays the helper's indirect call (~8 ns in test-run). An empty
 * asm after one of them leaves the two branches different to their ends.
 */
static __always_inline struct ivb_addr_owner *ivb_addr_lookup(const struct ivb_addr_key *k)
{
	struct ivb_addr_owner *o;

	if (k->family == IVB_AF_INET) {
		o = bpf_map_lookup_elem(&ivb_addrs4, &k->port_id);
		asm volatile("" : "+r"(o));
		return o;
	}
	return bpf_map_lookup_elem(&ivb_addrs6, &k->port_id);
}

/*
 * (port, address) -> the master's own addresses (kept by the agent): what
 * the kernel's oif-pinned route lookup finds RTN_LOCAL on the master; every
 * other destination of an l3 slave leaves through the master
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IVB_MAX_PORTS * 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ivb_addr_key);
	__type(value, struct ivb_addr_owner);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_local_addrs SEC(".maps");

/*
 * slave index -> slave state. The index is the control plane's (stable for
 * the slave's life, carried in each of its ivb_addrs4/ivb_addrs6 entries and fan-out
 * slots), so an ARRAY: one inlined lookup, no hashing per frame.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, IVB_MAX_SLAVES);
	__type(key, __u32);
	__type(value, struct ivb_slave);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_slaves SEC(".maps");

/* (port, host-side peer ifindex) -> slave index: the control plane's, never read per frame */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IVB_MAX_SLAVES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ivb_slave_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_slave_ids SEC(".maps");

/*
 * port_id * IVB_MAX_FANOUT + slot -> slave: each port's dense list walked
 * for broadcast/multicast copies (8 bytes a slot: 2 MiB for all ports)
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, IVB_MAX_PORTS * IVB_MAX_FANOUT);
	__type(key, __u32);
	__type(value, struct ivb_fanout_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_fanout_slots SEC(".maps");

/*
 * slave index -> its multicast filter (fanout.h reads it per copy): a map of
 * its own beside ivb_slaves, 40 bytes a slave (2.5 MiB at 64k slaves)
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, IVB_MAX_SLAVES);
	__type(key, __u32);
	__type(value, struct ivb_mc_filter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_mc_filters SEC(".maps");

/*
 * (slave's namespace, ifindex) -> its port and peer: lets the netlink guard
 * recognise requests about a slave from inside the slave's namespace
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IVB_MAX_SLAVES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ivb_guard_key);
	__type(value, struct ivb_guard_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_guard SEC(".maps");

/* a device's counters: one row per (direction, action, reason) of maps/counter_rows.def */
struct ivb_counter_block {
	struct ivb_counter row[IVB_SIZE_COUNTER_ROWS];
};

/*
 * device slot (maps/layout.h: a master's port id, IVB_SIZE_PORTS + a
 * slave's index) -> its counter block, per CPU, summed by the controller;
 * the last IVB_SIZE_PORTS blocks hold, per port, what its deleted slaves
 * counted (the control plane's, never written here). An array: the
 * verifier inlines the lookup, no hashing per decision. The controller
 * sizes it with ivb_slaves when it creates the maps.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, IVB_MAX_PORTS + IVB_MAX_SLAVES + IVB_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct ivb_counter_block);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_counters SEC(".maps");

/* runtime switches: monitor events on/off and their rate */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ivb_settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_settings SEC(".maps");

/* sampled decisions for `ipvlan-bpf monitor` */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, IVB_EVENTS_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_events SEC(".maps");

/* per-CPU event budget window (not a layout anyone else reads) */
struct ivb_rate {
	__u64 window_ns;
	__u32 count;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ivb_rate);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_event_rate SEC(".maps");

/*
 * Fingerprint of the map layouts the pinned maps were created with (the
 * controller writes it when it creates them and refuses to reuse maps whose
 * fingerprint differs: a layout change is never reinterpreted)
 */
/* the slow path (slowpath.h): frames held for the agent, its heartbeat, its answers, per-slave budgets */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, IVB_SLOWPATH_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_slowpath SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ivb_slowpath_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_slowpath_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, IVB_UNKNOWN_ENTRIES);
	__type(key, struct ivb_addr_key);
	__type(value, struct ivb_unknown_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_unknown SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, IVB_MAX_SLAVES);
	__type(key, struct ivb_slave_key);
	__type(value, struct ivb_rate);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_punt_budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ivb_layout_id);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_layout SEC(".maps");

#endif /* IVB_MAPS_H */
