/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Every verdict goes through ivb_verdict(), which records it in ivb_trace when
 * the instance was loaded with ivb_trace_enabled (unit tests, "explain"). In
 * the forwarding instances the flag is 0 and the verifier prunes the record.
 */
#ifndef IVB_VERDICT_H
#define IVB_VERDICT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "../../maps/layout.h"

/* Set by the loader: record decisions in ivb_trace. */
const volatile __u32 ivb_trace_enabled = 0;

/* the last decision of this program instance (not pinned: private to each load) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ivb_decision);
} ivb_trace SEC(".maps");

static __always_inline void ivb_trace_reset(void)
{
	__u32 k = 0;
	struct ivb_decision *d;

	if (!ivb_trace_enabled)
		return;
	d = bpf_map_lookup_elem(&ivb_trace, &k);
	if (d)
		__builtin_memset(d, 0, sizeof(*d));
}

static __always_inline void ivb_trace_fanout(__u32 copies)
{
	__u32 k = 0;
	struct ivb_decision *d;

	if (!ivb_trace_enabled)
		return;
	d = bpf_map_lookup_elem(&ivb_trace, &k);
	if (d)
		d->fanout = copies;
}

static __always_inline int ivb_verdict(int tc_ret, __u32 action, __u32 target, __u32 reason)
{
	__u32 k = 0;
	struct ivb_decision *d;

	if (ivb_trace_enabled) {
		d = bpf_map_lookup_elem(&ivb_trace, &k);
		if (d) {
			d->action = action;
			d->target_ifindex = target;
			d->reason = reason;
		}
	}
	return tc_ret;
}

#define IVB_PASS() ivb_verdict(IVB_TC_ACT_OK, IVB_ACT_PASS, 0, IVB_DROP_NONE)
#define IVB_DROP(reason) ivb_verdict(IVB_TC_ACT_SHOT, IVB_ACT_DROP, 0, (reason))

#endif /* IVB_VERDICT_H */
