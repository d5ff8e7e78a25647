// SPDX-License-Identifier: GPL-2.0-only
/*
 * Not a program: an object whose BTF carries every type of maps/layout.h, so
 * that maps/gen-layouts.ts can generate the TypeScript codecs from it and the
 * layout test can check them. Each type is named once in a variable below;
 * without a use, clang would leave the type out of BTF.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "../maps/layout.h"

struct ivb_layout_anchor {
	struct ivb_port_key port_key;
	struct ivb_port port;
	struct ivb_addr_key addr_key;
	struct ivb_addr4_key addr4_key;
	struct ivb_addr6_key addr6_key;
	struct ivb_addr_owner addr_owner;
	struct ivb_slave_key slave_key;
	struct ivb_slave slave;
	struct ivb_fanout_key fanout_key;
	struct ivb_fanout_entry fanout_entry;
	struct ivb_mc_filter mc_filter;
	enum ivb_size size;
	enum ivb_mode mode;
	enum ivb_port_flags port_flags;
	enum ivb_port_options port_options;
	enum ivb_family family;
	enum ivb_slave_flags slave_flags;
	enum ivb_action action;
	enum ivb_drop_reason drop_reason;
	struct ivb_decision decision;
	struct ivb_guard_key guard_key;
	struct ivb_guard_entry guard_entry;
	enum ivb_direction direction;
	enum ivb_counter_row counter_row;
	struct ivb_counter counter;
	struct ivb_settings settings;
	struct ivb_layout_id layout_id;
	struct ivb_event event;
	struct ivb_slowpath_state slowpath_state;
	struct ivb_punt punt;
	struct ivb_unknown_entry unknown_entry;
};

struct ivb_layout_anchor ivb_layout_anchor SEC(".data.layout");

char LICENSE[] SEC("license") = "GPL";
