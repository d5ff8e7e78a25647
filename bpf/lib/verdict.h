/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Every verdict goes through ivb_verdict(), the one place that
 *  - counts it (ivb_counters, per CPU, by port/device/direction/action/reason),
 *  - samples it to the monitor (ivb_events ring buffer, rate-limited per CPU),
 *  - records it in ivb_trace when the instance was loaded for tests or
 *    "explain" (ivb_trace_enabled).
 * Load-time switches live in .rodata, so a disabled feature costs nothing:
 * the verifier prunes it.
 *
 * The including program defines IVB_PROG_DIR (enum ivb_direction).
 */
#ifndef IVB_VERDICT_H
#define IVB_VERDICT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "maps.h"

#ifndef IVB_PROG_DIR
#error "define IVB_PROG_DIR before including verdict.h"
#endif

/* Set by the loader: which port (master) this instance serves. */
const volatile __u32 ivb_port_id = 0;
/* Set by the loader: record decisions in ivb_trace (tests, explain). */
const volatile __u32 ivb_trace_enabled = 0;
/* Set by the loader: count every decision (off only to measure their cost). */
const volatile __u32 ivb_counters_enabled = 0;
/*
 * Set by the loader for "explain": broadcast/multicast copies are counted in
 * the trace but not sent (bpf_clone_redirect would really transmit them
 * during a test run).
 */
const volatile __u32 ivb_dry_run = 0;

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

/* The device a row belongs to: the sending slave, or the receiving one, or 0 (master). */
static __always_inline __u32 ivb_row_ifindex(struct __sk_buff *skb, __u32 action, __u32 target)
{
	if (IVB_PROG_DIR == IVB_DIR_FROM_SLAVE)
		return skb->ingress_ifindex;
	return action == IVB_ACT_DELIVER || action == IVB_ACT_FANOUT_COPY ? target : 0;
}

static __always_inline void ivb_count_row(struct __sk_buff *skb, __u32 ifindex, __u32 direction, __u32 action,
					  __u32 reason)
{
	struct ivb_counter_key k = {
		.port_id = ivb_port_id,
		.ifindex = ifindex,
		.direction = direction,
		.action = action,
		.reason = reason,
	};
	struct ivb_counter *c, init = { .packets = 1, .bytes = skb->len };

	if (!ivb_counters_enabled)
		return;
	c = bpf_map_lookup_elem(&ivb_counters, &k);
	if (c) {
		/* per-CPU value: no other writer */
		c->packets++;
		c->bytes += skb->len;
		return;
	}
	if (bpf_map_update_elem(&ivb_counters, &k, &init, BPF_NOEXIST) == 0)
		return;
	c = bpf_map_lookup_elem(&ivb_counters, &k);
	if (c) {
		c->packets++;
		c->bytes += skb->len;
	}
}

static __always_inline void ivb_count(struct __sk_buff *skb, __u32 action, __u32 target, __u32 reason)
{
	ivb_count_row(skb, ivb_row_ifindex(skb, action, target), IVB_PROG_DIR, action, reason);
}

/* The receiver's side of a frame one slave hands another (its rx). */
static __always_inline void ivb_count_sibling_rx(struct __sk_buff *skb, __u32 receiver, __u32 action)
{
	if (IVB_PROG_DIR == IVB_DIR_FROM_SLAVE)
		ivb_count_row(skb, receiver, IVB_DIR_FROM_SIBLING, action, IVB_DROP_NONE);
}

/* Per-CPU token window: at most events_per_sec events per CPU and second. */
static __always_inline int ivb_event_allowed(__u32 per_sec)
{
	__u32 k = 0;
	struct ivb_rate *r = bpf_map_lookup_elem(&ivb_event_rate, &k);
	/* the coarse clock: a precise read per frame costs ~30 ns in a VM */
	__u64 now = bpf_ktime_get_coarse_ns();

	if (!r)
		return 0;
	if (now - r->window_ns > 1000000000ULL) {
		r->window_ns = now;
		r->count = 0;
	}
	if (r->count >= (per_sec ? per_sec : 1000))
		return 0;
	r->count++;
	return 1;
}

static __always_inline void ivb_emit_event(struct __sk_buff *skb, __u32 action, __u32 target, __u32 reason)
{
	__u32 k = 0;
	struct ivb_settings *s = bpf_map_lookup_elem(&ivb_settings, &k);
	struct ivb_event *e;
	__u32 n;

	if (ivb_trace_enabled)
		return; /* test runs and explain are not traffic */
	if (!s || !s->events)
		return;
	if (s->events == 1 && action != IVB_ACT_DROP)
		return;
	if (!ivb_event_allowed(s->events_per_sec))
		return;
	e = bpf_ringbuf_reserve(&ivb_events, sizeof(*e), 0);
	if (!e)
		return;
	e->ts_ns = bpf_ktime_get_ns();
	e->port_id = ivb_port_id;
	e->ifindex = ivb_row_ifindex(skb, action, target);
	e->target = target;
	e->len = skb->len;
	e->direction = IVB_PROG_DIR;
	e->action = action;
	e->reason = reason;
	__builtin_memset(e->head, 0, sizeof(e->head));
	if (skb->len >= sizeof(e->head)) {
		bpf_skb_load_bytes(skb, 0, e->head, sizeof(e->head));
		e->cap_len = sizeof(e->head);
	} else {
		n = skb->len & (sizeof(e->head) - 1);
		if (n)
			bpf_skb_load_bytes(skb, 0, e->head, n);
		e->cap_len = n;
	}
	bpf_ringbuf_submit(e, 0);
}

/*
 * The one exit: every return of a program goes through here. Global and
 * out of line, so the verifier checks counting, events and the trace once
 * (a static inline copy at each of some thirty return sites cost hundreds of
 * thousands of processed instructions) and the JIT image holds one copy.
 * tc_ret is computed by the caller (the redirect helpers record their
 * target per CPU, so they may run before the call).
 */
__attribute__((noinline)) int ivb_verdict(struct __sk_buff *skb, int tc_ret, __u32 action, __u32 target,
					  __u32 reason)
{
	__u32 k = 0;
	struct ivb_decision *d;

	if (!skb)
		return tc_ret;
	if (ivb_trace_enabled) {
		d = bpf_map_lookup_elem(&ivb_trace, &k);
		if (d) {
			d->action = action;
			d->target_ifindex = target;
			d->reason = reason;
		}
	}
	ivb_count(skb, action, target, reason);
	ivb_emit_event(skb, action, target, reason);
	return tc_ret;
}

#define IVB_PASS(skb, reason) ivb_verdict(skb, IVB_TC_ACT_OK, IVB_ACT_PASS, 0, (reason))
#define IVB_DROP(skb, reason) ivb_verdict(skb, IVB_TC_ACT_SHOT, IVB_ACT_DROP, 0, (reason))

#endif /* IVB_VERDICT_H */
