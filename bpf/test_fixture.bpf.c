// SPDX-License-Identifier: GPL-2.0-only
/*
 * Test fixture for test/native.test.ts only: exercises the pieces of libbpf
 * the native binding wraps (pinned maps, per-CPU maps, .rodata rewriting,
 * test runs, TCX links). Not part of the datapath.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

/* Verdict when the packet's marker byte has no entry in ivb_t_verdicts. */
const volatile __u32 ivb_t_default_verdict = TC_ACT_OK;
/* Written into the packet (byte 15) so tests can see data_out change. */
const volatile __u8 ivb_t_stamp = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ivb_t_verdicts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4);
} ivb_t_counters SEC(".maps");

SEC("tc")
int ivb_t_classify(struct __sk_buff *skb)
{
	__u32 key = 0, zero = 0;
	__u8 marker;
	__u32 *verdict;
	__u64 *cnt;

	cnt = bpf_map_lookup_elem(&ivb_t_counters, &zero);
	if (cnt)
		*cnt += 1;

	/* Byte 14: the first byte after the Ethernet header. */
	if (bpf_skb_load_bytes(skb, 14, &marker, 1))
		return TC_ACT_SHOT;
	key = marker;

	if (ivb_t_stamp) {
		__u8 stamp = ivb_t_stamp;

		bpf_skb_store_bytes(skb, 15, &stamp, 1, 0);
	}

	verdict = bpf_map_lookup_elem(&ivb_t_verdicts, &key);
	if (verdict)
		return *verdict;
	return ivb_t_default_verdict;
}

/* Replacement program for link-update tests. */
SEC("tc")
int ivb_t_pass(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

/*
 * Fails verification on purpose (map value dereferenced without a NULL
 * check); "?" keeps libbpf from loading it unless a test turns autoload on
 * to exercise the verifier-log path.
 */
SEC("?tc")
int ivb_t_bad(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u32 *v = bpf_map_lookup_elem(&ivb_t_verdicts, &key);

	return *v;
}

char LICENSE[] SEC("license") = "GPL";
