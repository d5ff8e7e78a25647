// SPDX-License-Identifier: GPL-2.0-only
/*
 * The netlink guard's rules (lib/guard_rules.h) in a program BPF_PROG_TEST_RUN
 * can run, for test/guard-rules.test.ts: the test frame is one rtnetlink
 * request as the LSM hook sees it, the netns inode it is judged in comes from
 * .rodata, and the return value is the hook's (0 or -errno). Kernels that
 * refuse BPF LSM programs still run the decisions this way. Not part of the
 * datapath.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include "lib/guard_rules.h"

const volatile __u32 ivb_guard_test_netns_ino = 0;

SEC("tc")
int ivb_guard_rules_test(struct __sk_buff *skb)
{
	const unsigned char *data = (const unsigned char *)(long)skb->data;

	return ivb_guard_decide(ivb_guard_test_netns_ino, data, skb->len);
}

char LICENSE[] SEC("license") = "GPL";
