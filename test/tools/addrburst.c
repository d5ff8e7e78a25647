// SPDX-License-Identifier: GPL-2.0-only
/*
 * addrburst: adds an address to a slave and uses it at once, many times.
 *
 *   addrburst NS_A DEV_A NS_B ADDR_B PREFIX_A COUNT PORT [v4|v6]
 *
 * Each round i: RTM_NEWADDR of PREFIX_A+i on DEV_A in namespace NS_A, then,
 * the moment the kernel announces it (its RTM_NEWADDR notification: for
 * IPv4 before the request's ack, for IPv6 a moment after it, from the DAD
 * work that also puts in the address's local route — a datagram to the
 * address before that is dropped by NS_A's own stack, Ip6InAddrErrors, with
 * the kernel driver too) — no process start in
 * between — a UDP datagram from that address to ADDR_B (in NS_B), and one
 * from NS_B to that address; both are awaited (up to 3 s: late is not lost,
 * on a loaded machine the agent may answer late), then the address
 * is deleted. Prints "rounds N from_ok N to_ok N" and the first lost rounds.
 * PREFIX_A is the address of round 0; round i adds i to its last 16 bits
 * (a /16 for IPv4, a /64 for IPv6).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static void enter(const char *ns)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
		die(path);
	close(fd);
}

struct nlreq {
	struct nlmsghdr nh;
	struct ifaddrmsg ifa;
	char attrs[64];
};

static void addattr(struct nlreq *r, int type, const void *data, int len)
{
	struct rtattr *rta = (void *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

	rta->rta_type = type;
	rta->rta_len = RTA_LENGTH(len);
	memcpy(RTA_DATA(rta), data, len);
	r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

static int nl_addr(int nl, int add, int family, int ifindex, const void *addr, int plen)
{
	static unsigned int seq;
	struct nlreq r = {};
	char buf[4096];
	int alen = family == AF_INET ? 4 : 16;

	r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(r.ifa));
	r.nh.nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
	r.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	r.nh.nlmsg_seq = ++seq;
	r.ifa.ifa_family = family;
	r.ifa.ifa_prefixlen = plen;
	r.ifa.ifa_index = ifindex;
	r.ifa.ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
	addattr(&r, IFA_LOCAL, addr, alen);
	addattr(&r, IFA_ADDRESS, addr, alen);
	if (send(nl, &r, r.nh.nlmsg_len, 0) < 0)
		die("netlink send");
	for (;;) {
		int n = recv(nl, buf, sizeof(buf), 0);
		struct nlmsghdr *h = (void *)buf;

		if (n < 0)
			die("netlink recv");
		for (; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR)
				continue;
			return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
		}
	}
}

/* Waits for the kernel's RTM_NEWADDR notification of ADDR on mon; 1 if it came within 3 s. */
static int await_newaddr(int mon, int family, const void *addr)
{
	struct pollfd p = { .fd = mon, .events = POLLIN };
	int alen = family == AF_INET ? 4 : 16;
	char buf[8192];

	while (poll(&p, 1, 3000) == 1) {
		int n = recv(mon, buf, sizeof(buf), 0);
		struct nlmsghdr *h = (void *)buf;

		if (n < 0)
			die("netlink monitor recv");
		for (; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			struct ifaddrmsg *ifa = NLMSG_DATA(h);
			struct rtattr *rta = IFA_RTA(ifa);
			int len = IFA_PAYLOAD(h);

			if (h->nlmsg_type != RTM_NEWADDR || ifa->ifa_family != family)
				continue;
			for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
				if ((rta->rta_type == IFA_LOCAL || rta->rta_type == IFA_ADDRESS) &&
				    RTA_PAYLOAD(rta) == (unsigned int)alen && memcmp(RTA_DATA(rta), addr, alen) == 0)
					return 1;
			}
		}
	}
	return 0;
}

/* Waits for one datagram carrying `tag` on fd; 1 if it came within 3 s. */
static int await_tag(int fd, unsigned int tag)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	unsigned int got;

	while (poll(&p, 1, 3000) == 1) {
		if (recv(fd, &got, sizeof(got), 0) == sizeof(got) && got == tag)
			return 1;
	}
	return 0;
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	double worst = 0, total = 0;
	int v6, family, plen, count, port, nl, mon, sa, sb, ifindex, from_ok = 0, to_ok = 0, lost_shown = 0;
	struct sockaddr_storage dst_b = {}, bind_a = {}, bind_b = {};
	unsigned char base[16], addr_b[16];
	socklen_t slen;
	int one = 1;

	if (argc != 9) {
		fprintf(stderr, "usage: addrburst NS_A DEV_A NS_B ADDR_B PREFIX_A COUNT PORT v4|v6\n");
		return 2;
	}
	v6 = strcmp(argv[8], "v6") == 0;
	family = v6 ? AF_INET6 : AF_INET;
	plen = v6 ? 64 : 16;
	count = atoi(argv[6]);
	port = atoi(argv[7]);
	if (inet_pton(family, argv[4], addr_b) != 1 || inet_pton(family, argv[5], base) != 1) {
		fprintf(stderr, "addrburst: bad address\n");
		return 2;
	}
	slen = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

	/* namespace B: a socket bound to its own address */
	enter(argv[3]);
	sb = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sb < 0)
		die("socket b");
	if (v6) {
		struct sockaddr_in6 *s = (void *)&bind_b, *d = (void *)&dst_b;

		s->sin6_family = d->sin6_family = AF_INET6;
		s->sin6_port = d->sin6_port = htons(port);
		memcpy(&s->sin6_addr, addr_b, 16);
		memcpy(&d->sin6_addr, addr_b, 16);
	} else {
		struct sockaddr_in *s = (void *)&bind_b, *d = (void *)&dst_b;

		s->sin_family = d->sin_family = AF_INET;
		s->sin_port = d->sin_port = htons(port);
		memcpy(&s->sin_addr, addr_b, 4);
		memcpy(&d->sin_addr, addr_b, 4);
	}
	if (bind(sb, (void *)&bind_b, slen) < 0)
		die("bind b");

	/* namespace A: netlink, and a socket on the wildcard address */
	enter(argv[1]);
	ifindex = if_nametoindex(argv[2]);
	if (!ifindex)
		die(argv[2]);
	nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl < 0)
		die("netlink socket");
	mon = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (mon < 0)
		die("netlink monitor socket");
	{
		struct sockaddr_nl snl = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR };

		if (bind(mon, (void *)&snl, sizeof(snl)) < 0)
			die("netlink monitor bind");
	}
	sa = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sa < 0)
		die("socket a");
	setsockopt(sa, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (v6) {
		struct sockaddr_in6 *s = (void *)&bind_a;

		s->sin6_family = AF_INET6;
		s->sin6_port = htons(port);
		s->sin6_addr = in6addr_any;
	} else {
		struct sockaddr_in *s = (void *)&bind_a;

		s->sin_family = AF_INET;
		s->sin_port = htons(port);
	}
	if (bind(sa, (void *)&bind_a, slen) < 0)
		die("bind a");

	for (int i = 0; i < count; i++) {
		unsigned char a[16];
		struct sockaddr_storage to_a = {};
		char cbuf[CMSG_SPACE(sizeof(struct in6_pktinfo))] = {};
		struct iovec iov;
		struct msghdr m = {};
		struct cmsghdr *c;
		unsigned int tag_from = 2 * i + 1, tag_to = 2 * i + 2;
		int err, ok_from, ok_to;

		unsigned int hi = v6 ? 14 : 2, low;

		memcpy(a, base, 16);
		low = ((a[hi] << 8) | a[hi + 1]) + i;
		a[hi] = low >> 8;
		a[hi + 1] = low;
		err = nl_addr(nl, 1, family, ifindex, a, plen);
		if (err) {
			fprintf(stderr, "addrburst: add of round %d: %s\n", i, strerror(-err));
			return 2;
		}
		if (!await_newaddr(mon, family, a)) {
			fprintf(stderr, "addrburst: no RTM_NEWADDR notification for round %d within 3 s\n", i);
			return 2;
		}
		/* from the new address, sent the moment the kernel announced it */
		iov.iov_base = &tag_from;
		iov.iov_len = sizeof(tag_from);
		m.msg_name = &dst_b;
		m.msg_namelen = slen;
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = cbuf;
		c = (void *)cbuf;
		if (v6) {
			struct in6_pktinfo pi = {};

			memcpy(&pi.ipi6_addr, a, 16);
			m.msg_controllen = CMSG_SPACE(sizeof(pi));
			c->cmsg_level = IPPROTO_IPV6;
			c->cmsg_type = IPV6_PKTINFO;
			c->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		} else {
			struct in_pktinfo pi = {};

			memcpy(&pi.ipi_spec_dst, a, 4);
			m.msg_controllen = CMSG_SPACE(sizeof(pi));
			c->cmsg_level = IPPROTO_IP;
			c->cmsg_type = IP_PKTINFO;
			c->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		}
		if (sendmsg(sa, &m, 0) < 0)
			die("sendmsg from the new address");
		/* to the new address, from the other namespace, at once */
		if (v6) {
			struct sockaddr_in6 *d = (void *)&to_a;

			d->sin6_family = AF_INET6;
			d->sin6_port = htons(port);
			memcpy(&d->sin6_addr, a, 16);
		} else {
			struct sockaddr_in *d = (void *)&to_a;

			d->sin_family = AF_INET;
			d->sin_port = htons(port);
			memcpy(&d->sin_addr, a, 4);
		}
		if (sendto(sb, &tag_to, sizeof(tag_to), 0, (void *)&to_a, slen) < 0)
			die("sendto the new address");
		double t0 = now_ms();

		ok_from = await_tag(sb, tag_from);
		ok_to = await_tag(sa, tag_to);
		t0 = now_ms() - t0;
		total += t0;
		if (t0 > worst)
			worst = t0;
		from_ok += ok_from;
		to_ok += ok_to;
		if ((!ok_from || !ok_to) && lost_shown++ < 5)
			printf("lost round %d:%s%s\n", i, ok_from ? "" : " from", ok_to ? "" : " to");
		err = nl_addr(nl, 0, family, ifindex, a, plen);
		if (err) {
			fprintf(stderr, "addrburst: delete of round %d: %s\n", i, strerror(-err));
			return 2;
		}
	}
	printf("rounds %d from_ok %d to_ok %d mean_ms %.2f worst_ms %.2f\n", count, from_ok, to_ok, total / count, worst);
	return 0;
}
