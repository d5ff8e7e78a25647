/* SPDX-License-Identifier: GPL-2.0-only */
/* Every size and limit of the datapath, with the reason for its value. */
#ifndef IVB_CONSTS_H
#define IVB_CONSTS_H

#include "../../maps/layout.h"

/* Masters ("ports") one host may run; each costs one ivb_ports entry and two programs. */
#define IVB_MAX_PORTS IVB_SIZE_PORTS
/*
 * Addresses over all slaves of all masters. Allocated on demand
 * (BPF_F_NO_PREALLOC), so an empty table costs nothing; 1M is the bench's
 * largest scale. The controller may lower it at load time.
 */
#define IVB_MAX_ADDRS (1 << 20)
/*
 * Slaves over all masters (the kernel allows 65533 per master: dev_id is 16
 * bits); their index in ivb_slaves is a __u16 carried in each address entry.
 */
#define IVB_MAX_SLAVES IVB_SIZE_SLAVES
/*
 * Copies one broadcast/multicast frame may fan out to. The kernel has no such
 * bound (it walks its slave list); ours keeps the verifier's loop bounded.
 * 256 is the bench's largest slave count.
 */
#define IVB_MAX_FANOUT IVB_SIZE_FANOUT_PER_PORT
/* a slave's multicast filter: the kernel's IPVLAN_MAC_FILTER_SIZE (an 8-bit hash) */
#define IVB_MC_FILTER_BITS IVB_SIZE_MC_FILTER_BITS

/* monitor ring: 1 MiB holds ~10k events between two reads */
#define IVB_EVENTS_RING_BYTES (1 << 20)

/*
 * Slow path (slowpath.h). The ring holds ~160 held frames between two reads
 * of the agent (it reads every millisecond). A slave may have
 * IVB_PUNT_BUDGET frames held per IVB_PUNT_WINDOW_NS (100 ms), as the kernel's
 * neighbour queue (unres_qlen) bounds what waits on one neighbour; an address
 * the agent found unowned is not held again for IVB_UNKNOWN_TTL_NS (10 s: a
 * peer on the slaves' subnet costs one copy to the agent every 10 s).
 */
#define IVB_SLOWPATH_RING_BYTES (256 * 1024)
#define IVB_UNKNOWN_ENTRIES 65536
#define IVB_PUNT_BUDGET 64
#define IVB_PUNT_WINDOW_NS 100000000ULL
#define IVB_UNKNOWN_TTL_NS 10000000000ULL

/* ETH_P_* in host order (linux/if_ether.h pulls in too much for BPF) */
#define IVB_ETH_P_IP 0x0800
#define IVB_ETH_P_ARP 0x0806
#define IVB_ETH_P_IPV6 0x86DD
#define IVB_ETH_P_8021Q 0x8100
#define IVB_ETH_P_8021AD 0x88A8

#define IVB_ETH_HLEN 14
#define IVB_ARPHRD_ETHER 1
#define IVB_NEXTHDR_ICMPV6 58
#define IVB_NDISC_NEIGHBOUR_SOLICITATION 135

/* TC verdicts (linux/pkt_cls.h) */
#define IVB_TC_ACT_OK 0
#define IVB_TC_ACT_SHOT 2

#ifndef BPF_F_INGRESS
#define BPF_F_INGRESS 1
#endif

#endif /* IVB_CONSTS_H */
