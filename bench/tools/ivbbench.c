// SPDX-License-Identifier: GPL-2.0-only
/*
 * ivbbench: the bench's small traffic tools, each bounded in time.
 *   xdpgen IFNAME DSTMAC SRCMAC SRCIP DSTIP DPORT SECONDS CPU
 *       64-byte UDP frames sent out of IFNAME by an XDP program run with
 *       BPF_PROG_TEST_RUN + BPF_F_TEST_XDP_LIVE_FRAMES (bpf_redirect to IFNAME:
 *       what xdp-trafficgen does, without its tracepoint program, which this
 *       kernel refuses). Prints the frames handed to the driver.
 *   xdpattach IFNAME drop    attach an XDP_DROP program (driver mode); detach with ip link set xdp off
 *   blast DSTIP DPORT SECONDS CPU     sendmmsg of 18-byte UDP payloads (64-byte frames); prints sent
 *   sink BINDIP PORT SECONDS          a UDP socket nobody reads (tiny rcvbuf): arrivals count in Udp
 *                                     InDatagrams + RcvbufErrors
 *   rrserver BINDIP PORT SECONDS CPU  UDP echo
 *   rrclient DSTIP PORT COUNT CPU     COUNT round trips; prints p50 p90 p99 min max (us) lost
 *   tcbase REPEAT                     BPF_PROG_TEST_RUN ns of a TC program that only returns
 *                                     TC_ACT_OK on a 64-byte frame: the test-run floor
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void pin(int cpu) {
	if (cpu < 0) return;
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	if (sched_setaffinity(0, sizeof(s), &s)) perror("sched_setaffinity");
}

static int parse_mac(const char *s, uint8_t *m) {
	return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6 ? 0 : -1;
}

static uint16_t csum(const uint16_t *p, int n) {
	uint32_t s = 0;
	for (int i = 0; i < n / 2; i++) s += p[i];
	while (s >> 16) s = (s & 0xffff) + (s >> 16);
	return ~s;
}

static int load_xdp(int ret, int ifindex) {
	/* ret < 0: return bpf_redirect(ifindex, 0); else return ret */
	struct bpf_insn redir[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 1, .imm = ifindex },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 2, .imm = 0 },
		{ .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	struct bpf_insn fixed[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = ret },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, o);
	int fd = ret < 0 ? bpf_prog_load(BPF_PROG_TYPE_XDP, "ivbb_gen", "GPL", redir, 4, &o)
			 : bpf_prog_load(BPF_PROG_TYPE_XDP, "ivbb_drop", "GPL", fixed, 2, &o);
	if (fd < 0) fprintf(stderr, "bpf_prog_load: %s\n", strerror(errno));
	return fd;
}

static int xdpgen(char **a) {
	int ifindex = if_nametoindex(a[0]);
	if (!ifindex) { perror(a[0]); return 1; }
	uint8_t f[60] = { 0 };
	if (parse_mac(a[1], f) || parse_mac(a[2], f + 6)) { fprintf(stderr, "bad mac\n"); return 2; }
	f[12] = 0x08; f[13] = 0x00;
	uint8_t *ip = f + 14;
	ip[0] = 0x45; ip[2] = 0; ip[3] = 46; ip[8] = 64; ip[9] = 17;
	inet_pton(AF_INET, a[3], ip + 12);
	inet_pton(AF_INET, a[4], ip + 16);
	uint16_t c = csum((uint16_t *)ip, 20);
	memcpy(ip + 10, &c, 2);
	uint8_t *udp = ip + 20;
	uint16_t sp = htons(4321), dp = htons(atoi(a[5])), ul = htons(26);
	memcpy(udp, &sp, 2); memcpy(udp + 2, &dp, 2); memcpy(udp + 4, &ul, 2);
	double secs = atof(a[6]);
	pin(atoi(a[7]));
	int fd = load_xdp(-1, ifindex);
	if (fd < 0) return 1;
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f, .data_size_in = sizeof(f),
		    .repeat = 1 << 16, .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = 64);
	double t0 = now(), t;
	unsigned long long sent = 0;
	while ((t = now()) - t0 < secs) {
		if (bpf_prog_test_run_opts(fd, &o)) { fprintf(stderr, "test_run: %s\n", strerror(errno)); return 1; }
		sent += o.repeat;
	}
	printf("%llu %.6f\n", sent, t - t0);
	return 0;
}

static int xdpattach(char **a) {
	int ifindex = if_nametoindex(a[0]);
	if (!ifindex) { perror(a[0]); return 1; }
	int fd = load_xdp(1 /* XDP_DROP */, 0);
	if (fd < 0) return 1;
	if (bpf_xdp_attach(ifindex, fd, XDP_FLAGS_DRV_MODE, NULL)) { fprintf(stderr, "xdp attach: %s\n", strerror(errno)); return 1; }
	return 0;
}

static struct sockaddr_in sin_of(const char *ip, const char *port) {
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(atoi(port)) };
	inet_pton(AF_INET, ip, &s.sin_addr);
	return s;
}

static int blast(char **a) {
	struct sockaddr_in d = sin_of(a[0], a[1]);
	double secs = atof(a[2]);
	pin(atoi(a[3]));
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (connect(s, (struct sockaddr *)&d, sizeof(d))) { perror("connect"); return 1; }
	enum { B = 64 };
	char payload[18] = "ivbb-bench-64bytes";
	struct iovec iov = { payload, sizeof(payload) };
	struct mmsghdr m[B];
	memset(m, 0, sizeof(m));
	for (int i = 0; i < B; i++) { m[i].msg_hdr.msg_iov = &iov; m[i].msg_hdr.msg_iovlen = 1; }
	unsigned long long sent = 0, errs = 0;
	double t0 = now(), t;
	while ((t = now()) - t0 < secs) {
		for (int k = 0; k < 16; k++) {
			int n = sendmmsg(s, m, B, 0);
			if (n > 0) sent += n; else errs++;
		}
	}
	printf("%llu %.6f %llu\n", sent, t - t0, errs);
	return 0;
}

static int sink(char **a) {
	struct sockaddr_in b = sin_of(a[0], a[1]);
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	int one = 1, small = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (bind(s, (struct sockaddr *)&b, sizeof(b))) { perror("bind"); return 1; }
	printf("ready\n");
	fflush(stdout);
	double secs = atof(a[2]);
	struct timespec ts = { (time_t)secs, (long)((secs - (time_t)secs) * 1e9) };
	nanosleep(&ts, NULL);
	return 0;
}

static int rrserver(char **a) {
	struct sockaddr_in b = sin_of(a[0], a[1]);
	double secs = atof(a[2]);
	pin(atoi(a[3]));
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (bind(s, (struct sockaddr *)&b, sizeof(b))) { perror("bind"); return 1; }
	struct timeval tv = { 0, 200000 };
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	printf("ready\n");
	fflush(stdout);
	double t0 = now();
	char buf[64];
	while (now() - t0 < secs) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n > 0) sendto(s, buf, n, 0, (struct sockaddr *)&from, fl);
	}
	return 0;
}

static int cmpd(const void *x, const void *y) {
	double a = *(const double *)x, b = *(const double *)y;
	return a < b ? -1 : a > b;
}

static int rrclient(char **a) {
	struct sockaddr_in d = sin_of(a[0], a[1]);
	int count = atoi(a[2]);
	pin(atoi(a[3]));
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (connect(s, (struct sockaddr *)&d, sizeof(d))) { perror("connect"); return 1; }
	struct timeval tv = { 0, 100000 };
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	double *rtt = calloc(count, sizeof(double));
	int got = 0, lost = 0;
	char buf[64] = "ping";
	for (int i = 0; i < count + 200; i++) {
		double t0 = now();
		if (send(s, buf, 18, 0) < 0) { lost++; continue; }
		if (recv(s, buf, sizeof(buf), 0) < 0) { lost++; continue; }
		double us = (now() - t0) * 1e6;
		if (i >= 200 && got < count) rtt[got++] = us; /* first 200: warm-up */
	}
	if (!got) { printf("0 0 0 0 0 %d\n", lost); return 1; }
	qsort(rtt, got, sizeof(double), cmpd);
	printf("%.2f %.2f %.2f %.2f %.2f %d\n", rtt[got / 2], rtt[(int)(got * 0.9)], rtt[(int)(got * 0.99)], rtt[0], rtt[got - 1], lost);
	return 0;
}

static int tcbase(char **a) {
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, po);
	int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "ivbb_base", "GPL", insns, 2, &po);
	if (fd < 0) { fprintf(stderr, "bpf_prog_load: %s\n", strerror(errno)); return 1; }
	uint8_t f[60] = { 0 }, out[600];
	f[12] = 0x08;
	f[14] = 0x45;
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f, .data_size_in = sizeof(f), .data_out = out,
		    .data_size_out = sizeof(out), .repeat = atoi(a[0]));
	if (bpf_prog_test_run_opts(fd, &o)) { fprintf(stderr, "test_run: %s\n", strerror(errno)); return 1; }
	printf("%u\n", o.duration);
	return 0;
}

int main(int argc, char **argv) {
	struct { const char *name; int args; int (*fn)(char **); } cmds[] = {
		{ "xdpgen", 8, xdpgen }, { "xdpattach", 2, xdpattach }, { "blast", 4, blast },
		{ "sink", 3, sink },     { "rrserver", 4, rrserver },   { "rrclient", 4, rrclient }, { "tcbase", 1, tcbase },
	};
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (unsigned i = 0; argc > 1 && i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name)) continue;
		if (argc - 2 != cmds[i].args) { fprintf(stderr, "%s: %d arguments\n", cmds[i].name, cmds[i].args); return 2; }
		return cmds[i].fn(argv + 2);
	}
	fprintf(stderr, "usage: ivbbench xdpgen|xdpattach|blast|sink|rrserver|rrclient|tcbase ...\n");
	return 2;
}
