// SPDX-License-Identifier: GPL-2.0-only
/*
 * The netlink guard: the kernel driver's netlink-time refusals (the rules are
 * in lib/guard_rules.h) as a BPF LSM program on netlink_send, for every
 * NETLINK_ROUTE request. A refusal fails the request's send with the kernel's
 * errno; the hook runs before rtnetlink processes the message, so no netlink
 * error reply is made (docs/datapath.md, "How a refusal reaches the user").
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "lib/guard_rules.h"

#define IVB_NETLINK_ROUTE 0

SEC("lsm/netlink_send")
int BPF_PROG(ivb_netlink_send, struct sock *sk, struct sk_buff *skb)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IVB_NETLINK_ROUTE)
		return 0;
	return ivb_guard_decide(BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum),
				BPF_CORE_READ(skb, data), BPF_CORE_READ(skb, len));
}

char LICENSE[] SEC("license") = "GPL";
