/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Every verdict goes through ivb_verdict(), the one place that
 *  - counts it (ivb_counters, per CPU: a row of the device's block),
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

/* The device an event is about: the sending slave, or the receiving one, or 0 (master). */
static __always_inline __u32 ivb_row_ifindex(struct __sk_buff *skb, __u32 action, __u32 target)
{
	if (IVB_PROG_DIR == IVB_DIR_FROM_SLAVE)
		return skb->ingress_ifindex;
	return action == IVB_ACT_DELIVER || action == IVB_ACT_FANOUT_COPY ? target : 0;
}

/*
 * (direction, action, reason) -> 1 + its row in a device's counter block
 * (0: not in maps/counter_rows.def). In .rodata: one load per decision, and
 * folded by the compiler where the three are constants.
 */
#define IVB_COUNTER_ACTIONS 16
#define IVB_COUNTER_REASONS 32
/* 4 directions (3 used): the masks below keep every index inside the table */
static const __u8 ivb_counter_row_of[4][IVB_COUNTER_ACTIONS][IVB_COUNTER_REASONS] = {
#define IVB_COUNTER_ROW(row, dir, act, reason) [IVB_DIR_FROM_##dir][IVB_ACT_##act][IVB_DROP_##reason] = (row) + 1,
#define IVB_COUNTER_OTHER(row, dir)
#include "../../maps/counter_rows.def"
#undef IVB_COUNTER_ROW
#undef IVB_COUNTER_OTHER
};

#define IVB_COUNTER_ROW(row, dir, act, reason)                                                              \
	_Static_assert(IVB_ACT_##act < IVB_COUNTER_ACTIONS && IVB_DROP_##reason < IVB_COUNTER_REASONS, \
		       "ivb_counter_row_of is too small for " #act "/" #reason);
#define IVB_COUNTER_OTHER(row, dir)
#include "../../maps/counter_rows.def"
#undef IVB_COUNTER_ROW
#undef IVB_COUNTER_OTHER

static __always_inline __u32 ivb_counter_row(__u32 direction, __u32 action, __u32 reason)
{
	__u32 row = 0, at;

	if (direction < 4 && action < IVB_COUNTER_ACTIONS && reason < IVB_COUNTER_REASONS) {
		at = (direction * IVB_COUNTER_ACTIONS + action) * IVB_COUNTER_REASONS + reason;
		/* the compiler would drop a mask it can prove useless; the verifier needs it */
		asm volatile("" : "+r"(at));
		row = ((const __u8 *)ivb_counter_row_of)[at & (sizeof(ivb_counter_row_of) - 1)];
	}
	if (row)
		return row - 1;
	/* not listed: counted all the same, as "unlisted" */
	if (direction == IVB_DIR_FROM_WIRE)
		return IVB_ROW_WIRE__OTHER;
	return direction == IVB_DIR_FROM_SLAVE ? IVB_ROW_SLAVE__OTHER : IVB_ROW_SIBLING__OTHER;
}

/* A slave's device slot in ivb_counters (a master's is its port id). */
static __always_inline __u32 ivb_slave_slot(__u32 index)
{
	return IVB_SIZE_PORTS + index;
}

/*
 * The sending slave's index, per CPU and private to this instance: slave
 * egress sets it as soon as it knows it (0 until then) and every count of
 * the frame reads it. A TC program runs to its end on its CPU, so nothing
 * else writes it meanwhile.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ivb_sender_index SEC(".maps");

static __always_inline __u32 *ivb_sender_index_get(void)
{
	__u32 k = 0;

	return bpf_map_lookup_elem(&ivb_sender_index, &k);
}

/*
 * The sending slave's slot (slave egress): its index as set, else found
 * through ivb_slave_ids (a frame decided before its source was looked up,
 * or sent from an address not its own); a sender with no index counts on
 * the master's block.
 */
static __always_inline __u32 ivb_sender_slot(struct __sk_buff *skb)
{
	struct ivb_slave_key sk = { .port_id = ivb_port_id, .peer_ifindex = skb->ingress_ifindex };
	__u32 *index = ivb_sender_index_get(), *found;

	if (index && *index)
		return ivb_slave_slot(*index);
	found = bpf_map_lookup_elem(&ivb_slave_ids, &sk);
	if (!found)
		return ivb_port_id;
	if (index)
		*index = *found;
	return ivb_slave_slot(*found);
}

static __always_inline void ivb_count_row(struct __sk_buff *skb, __u32 slot, __u32 row)
{
	struct ivb_counter_block *b;

	if (!ivb_counters_enabled)
		return;
	b = bpf_map_lookup_elem(&ivb_counters, &slot);
	if (!b || row >= IVB_SIZE_COUNTER_ROWS)
		return;
	/* per-CPU value: no other writer */
	b->row[row].packets++;
	b->row[row].bytes += skb->len;
}

/*
 * Counts a decision of this program's direction: on the sender's block from
 * a slave; from the wire on the receiving slave's (index `receiver`) for a
 * delivery or a copy, else on the master's.
 */
static __always_inline void ivb_count(struct __sk_buff *skb, __u32 action, __u32 reason, __u32 receiver)
{
	__u32 slot;

	if (!ivb_counters_enabled)
		return;
	if (IVB_PROG_DIR == IVB_DIR_FROM_SLAVE)
		slot = ivb_sender_slot(skb);
	else if (action == IVB_ACT_DELIVER || action == IVB_ACT_FANOUT_COPY)
		slot = ivb_slave_slot(receiver);
	else
		slot = ivb_port_id;
	ivb_count_row(skb, slot, ivb_counter_row(IVB_PROG_DIR, action, reason));
}

/* The receiver's side of a frame one slave hands another (its rx), on its block (index `receiver`). */
static __always_inline void ivb_count_sibling_rx(struct __sk_buff *skb, __u32 receiver, __u32 action)
{
	if (IVB_PROG_DIR == IVB_DIR_FROM_SLAVE)
		ivb_count_row(skb, ivb_slave_slot(receiver), ivb_counter_row(IVB_DIR_FROM_SIBLING, action, IVB_DROP_NONE));
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

/* action and reason in one argument of ivb_verdict() (a BPF function takes five) */
#define IVB_WHAT(action, reason) ((action) | ((reason) << 8))

/*
 * The one exit: every return of a program goes through here. Global and
 * out of line, so the verifier checks counting, events and the trace once
 * (a static inline copy at each of some thirty return sites cost hundreds of
 * thousands of processed instructions) and the JIT image holds one copy;
 * clang merges the return sites into one call (test/bpf-shape.test.ts).
 * tc_ret is computed by the caller (the redirect helpers record their
 * target per CPU, so they may run before the call). `receiver`: the
 * receiving slave's index for a delivery from the wire (its block counts it).
 */
__attribute__((noinline)) int ivb_verdict(struct __sk_buff *skb, int tc_ret, __u32 what, __u32 target,
					  __u32 receiver)
{
	__u32 action = what & 0xff, reason = what >> 8;
	__u32 k = 0;
	struct ivb_decision *d;

	/*
	 * slave egress never reads `receiver`: without this use clang would pass
	 * it uninitialised, which the verifier refuses for a global function
	 */
	asm volatile("" : : "r"(receiver));
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
	ivb_count(skb, action, reason, receiver);
	ivb_emit_event(skb, action, target, reason);
	return tc_ret;
}

#define IVB_VERDICT(skb, tc_ret, action, target, reason) \
	ivb_verdict(skb, tc_ret, IVB_WHAT(action, reason), target, 0)
#define IVB_PASS(skb, reason) IVB_VERDICT(skb, IVB_TC_ACT_OK, IVB_ACT_PASS, 0, (reason))
#define IVB_DROP(skb, reason) IVB_VERDICT(skb, IVB_TC_ACT_SHOT, IVB_ACT_DROP, 0, (reason))

#endif /* IVB_VERDICT_H */
