// SPDX-License-Identifier: GPL-2.0-only
/*
 * The few libc calls Node does not expose (setns, statfs, if_nametoindex,
 * close on a raw fd, strerror), bound through koffi. Everything here is
 * synchronous and runs on the calling JS thread.
 */
import { constants as osConstants } from 'node:os';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

const c = {
	close: libc.func('int close(int fd)'),
	open: libc.func('int open(const char *path, int flags)'),
	setns: libc.func('int setns(int fd, int nstype)'),
	statfs: libc.func('int statfs(const char *path, void *buf)'),
	strerror: libc.func('const char *strerror(int errnum)'),
	if_nametoindex: libc.func('unsigned int if_nametoindex(const char *ifname)'),
	socket: libc.func('int socket(int domain, int type, int protocol)'),
	sendto: libc.func('intptr_t sendto(int fd, const uint8_t *buf, size_t len, int flags, const uint8_t *addr, uint32_t addrlen)'),
	recv: libc.func('intptr_t recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)'),
	recvmsg: libc.func('intptr_t recvmsg(int fd, void *msg, int flags)'),
	bind: libc.func('int bind(int fd, const uint8_t *addr, uint32_t addrlen)'),
	setsockopt: libc.func('int setsockopt(int fd, int level, int name, const uint8_t *value, uint32_t len)'),
	poll: libc.func('int poll(_Inout_ uint8_t *fds, uint64_t nfds, int timeout)'),
};

const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
export const CLONE_NEWNET = 0x40000000;
export const BPF_FS_MAGIC = 0xcafe4a11;

const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(osConstants.errno)) {
	// EWOULDBLOCK/EAGAIN and EDEADLOCK/EDEADLK alias; keep the first (the usual) name.
	if (!errnoNames.has(value)) errnoNames.set(value, name);
}

/** Symbolic name of an errno value, e.g. 2 → "ENOENT" (or "E<n>" if unknown). */
export function errnoName(errno: number): string {
	return errnoNames.get(errno) ?? `E${errno}`;
}

/** "No such file or directory (ENOENT)" */
export function describeErrno(errno: number): string {
	const text = c.strerror(errno) as string | null;
	return `${text ?? 'Unknown error'} (${errnoName(errno)})`;
}

/** errno as left by the last koffi call on this thread. */
export function lastErrno(): number {
	return koffi.errno();
}

/** A failed libc call; `code` mirrors Node's system errors (e.g. 'ENOENT'). */
export class LibcError extends Error {
	override name = 'LibcError';
	readonly code: string;
	constructor(
		readonly op: string,
		readonly errno: number,
	) {
		super(`${op}: ${describeErrno(errno)}`);
		this.code = errnoName(errno);
	}
}

/** Opens a path read-only (close-on-exec) and returns the raw fd. */
export function openRdonly(path: string): number {
	const fd = c.open(path, O_RDONLY | O_CLOEXEC) as number;
	if (fd < 0) throw new LibcError(`open(${path})`, lastErrno());
	return fd;
}

/** close(2) on a raw fd (BPF object, link, namespace...). */
export function closeFd(fd: number): void {
	if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`closeFd: invalid fd ${fd}`);
	if ((c.close(fd) as number) < 0) throw new LibcError(`close(${fd})`, lastErrno());
}

/** setns(2) on an fd already open; nstype 0 accepts any namespace type. */
export function setnsFd(fd: number, nstype: number): void {
	if ((c.setns(fd, nstype) as number) < 0) throw new LibcError(`setns(${fd})`, lastErrno());
}

/** statfs(2) f_type; the caller compares it against a magic number. */
export function statfsType(path: string): number {
	// struct statfs is 120 bytes on LP64 glibc; f_type (long) comes first.
	const buf = Buffer.alloc(256);
	if ((c.statfs(path, buf) as number) < 0) throw new LibcError(`statfs(${path})`, lastErrno());
	return Number(buf.readBigUInt64LE(0) & 0xffffffffn);
}

/** if_nametoindex(3); 0 when the name is unknown in the thread's netns. */
export function ifNameToIndexRaw(name: string): { index: number; errno: number } {
	const index = c.if_nametoindex(name) as number;
	return { index, errno: index === 0 ? lastErrno() : 0 };
}

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;

/**
 * A raw packet socket (AF_PACKET, protocol 0: it receives nothing) in the
 * calling thread's network namespace, for sending whole Ethernet frames.
 */
export function packetSocket(): number {
	const fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0) as number;
	if (fd < 0) throw new LibcError('socket(AF_PACKET)', lastErrno());
	return fd;
}

/** Transmits one Ethernet frame on ifindex (of the socket's namespace) through a packet socket. */
export function sendFrame(fd: number, ifindex: number, frame: Buffer): void {
	// struct sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype, halen, addr[8]
	const sll = Buffer.alloc(20);
	sll.writeUInt16LE(AF_PACKET, 0);
	if (frame.length >= 14) frame.copy(sll, 2, 12, 14);
	sll.writeInt32LE(ifindex, 4);
	sll.writeUInt8(6, 11);
	frame.copy(sll, 12, 0, 6);
	const n = c.sendto(fd, frame, frame.length, 0, sll, sll.length) as number | bigint;
	if (Number(n) < 0) throw new LibcError(`sendto(ifindex ${ifindex})`, lastErrno());
}

const SOL_PACKET = 263;
const PACKET_ADD_MEMBERSHIP = 1;
const PACKET_DROP_MEMBERSHIP = 2;
/** packet_mreq.mr_type: a link-layer group, or the whole device's allmulti */
export const PACKET_MR_MULTICAST = 0;
export const PACKET_MR_ALLMULTI = 2;

/**
 * Adds (or drops) a membership of a packet socket on IFINDEX (of the
 * socket's namespace): a link-layer group (dev_mc_add) or allmulti
 * (dev_set_allmulti), both counted by the kernel per holder and undone
 * when the socket closes.
 */
export function packetMembership(fd: number, ifindex: number, type: number, group: Buffer | null, add: boolean): void {
	// struct packet_mreq: int mr_ifindex, u16 mr_type, u16 mr_alen, u8 mr_address[8]
	const mreq = Buffer.alloc(16);
	mreq.writeInt32LE(ifindex, 0);
	mreq.writeUInt16LE(type, 4);
	if (group) {
		mreq.writeUInt16LE(group.length, 6);
		group.copy(mreq, 8, 0, Math.min(8, group.length));
	}
	const opt = add ? PACKET_ADD_MEMBERSHIP : PACKET_DROP_MEMBERSHIP;
	if ((c.setsockopt(fd, SOL_PACKET, opt, mreq, mreq.length) as number) < 0) {
		throw new LibcError(`setsockopt(PACKET_${add ? 'ADD' : 'DROP'}_MEMBERSHIP, ifindex ${ifindex})`, lastErrno());
	}
}

const AF_NETLINK = 16;

/**
 * A netlink socket (NETLINK_ROUTE is 0) in the calling thread's network
 * namespace: it stays bound to that namespace, and holds it, until closed.
 */
export function netlinkSocket(protocol: number): number {
	const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol) as number;
	if (fd < 0) throw new LibcError('socket(AF_NETLINK)', lastErrno());
	return fd;
}

/** Sends one netlink request to the kernel (the socket's default peer). */
export function netlinkSend(fd: number, msg: Buffer): void {
	// struct sockaddr_nl: family, pad, pid 0 (the kernel), groups 0
	const snl = Buffer.alloc(12);
	snl.writeUInt16LE(AF_NETLINK, 0);
	const n = c.sendto(fd, msg, msg.length, 0, snl, snl.length) as number | bigint;
	if (Number(n) < 0) throw new LibcError('sendto(netlink)', lastErrno());
}

const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;

/** Makes a blocking receive on FD give up with EAGAIN after MS milliseconds. */
export function setRecvTimeout(fd: number, ms: number): void {
	// struct timeval: seconds, microseconds
	const tv = Buffer.alloc(16);
	tv.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
	tv.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
	if ((c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16) as number) < 0) throw new LibcError('setsockopt(SO_RCVTIMEO)', lastErrno());
}

/** Receives one datagram (blocking) into BUF; its length (EINTR retried). */
export function netlinkRecv(fd: number, buf: Buffer): number {
	for (;;) {
		const n = Number(c.recv(fd, buf, buf.length, 0) as number | bigint);
		if (n >= 0) return n;
		const errno = lastErrno();
		if (errno !== 4 /* EINTR */) throw new LibcError('recv(netlink)', errno);
	}
}

const SOL_NETLINK = 270;
const NETLINK_LISTEN_ALL_NSID = 8;
const NETLINK_EXT_ACK = 11;

/** Asks the kernel for its extended ack (the reason text a refusal carries, as iproute2 prints it). */
export function setNetlinkExtAck(fd: number): void {
	const one = Buffer.alloc(4);
	one.writeInt32LE(1, 0);
	if ((c.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4) as number) < 0) throw new LibcError('setsockopt(NETLINK_EXT_ACK)', lastErrno());
}
const MSG_DONTWAIT = 0x40;

/**
 * A netlink socket subscribed to multicast GROUPS (a bit mask of the
 * first 32, RTMGRP_*) that also hears the namespaces that have an nsid in
 * its own (NETLINK_LISTEN_ALL_NSID); non-blocking reads through
 * netlinkRecvNsid.
 */
export function netlinkListener(protocol: number, groups: number): number {
	const fd = netlinkSocket(protocol);
	try {
		const snl = Buffer.alloc(12);
		snl.writeUInt16LE(AF_NETLINK, 0);
		snl.writeUInt32LE(groups >>> 0, 8);
		if ((c.bind(fd, snl, snl.length) as number) < 0) throw new LibcError('bind(netlink)', lastErrno());
		const one = Buffer.alloc(4);
		one.writeInt32LE(1, 0);
		if ((c.setsockopt(fd, SOL_NETLINK, NETLINK_LISTEN_ALL_NSID, one, 4) as number) < 0) {
			throw new LibcError('setsockopt(NETLINK_LISTEN_ALL_NSID)', lastErrno());
		}
		return fd;
	} catch (e) {
		closeFd(fd);
		throw e;
	}
}

const NETLINK_ADD_MEMBERSHIP = 1;

/**
 * Subscribes a netlink socket to GROUP by number (those past the first 32,
 * which bind's mask cannot name). Throws LibcError (EINVAL on a kernel that
 * does not know the group) for the caller to fall back.
 */
export function netlinkAddMembership(fd: number, group: number): void {
	const v = Buffer.alloc(4);
	v.writeUInt32LE(group, 0);
	if ((c.setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, v, 4) as number) < 0) {
		throw new LibcError(`setsockopt(NETLINK_ADD_MEMBERSHIP ${group})`, lastErrno());
	}
}

/**
 * Memory whose address the kernel is given inside another structure (an
 * iovec, a msghdr's control buffer) must not move. V8 keeps small typed
 * arrays (up to 64 bytes) on its own heap and moves them at the next
 * scavenge: an address taken before an allocation could be stale by the
 * call (the listener's recvmsg failed with EFAULT under load, and its
 * batch of notifications was lost). An ArrayBuffer's store is never moved.
 */
function stableBuffer(size: number): Buffer {
	return Buffer.from(new ArrayBuffer(size));
}
const recvIov = stableBuffer(16);
const recvControl = stableBuffer(64);
const recvMsg = stableBuffer(56);

/**
 * One datagram without blocking: its length and the nsid it came from
 * (null: the socket's own namespace); null when nothing is waiting.
 * ENOBUFS (the kernel dropped messages: the reader was too slow) is thrown
 * as a LibcError for the caller to resync.
 */
export function netlinkRecvNsid(fd: number, buf: Buffer): { length: number; nsid: number | null } | null {
	const iov = recvIov;
	const control = recvControl;
	const msg = recvMsg;
	iov.writeBigUInt64LE(koffi.address(buf), 0);
	iov.writeBigUInt64LE(BigInt(buf.length), 8);
	// struct msghdr: name, namelen, iov, iovlen, control, controllen, flags
	msg.fill(0);
	msg.writeBigUInt64LE(koffi.address(iov), 16);
	msg.writeBigUInt64LE(1n, 24);
	msg.writeBigUInt64LE(koffi.address(control), 32);
	for (;;) {
		msg.writeBigUInt64LE(BigInt(control.length), 40);
		const n = Number(c.recvmsg(fd, msg, MSG_DONTWAIT) as number | bigint);
		if (n < 0) {
			const errno = lastErrno();
			if (errno === 4 /* EINTR */) continue;
			if (errno === 11 /* EAGAIN */) return null;
			throw new LibcError('recvmsg(netlink)', errno);
		}
		let nsid: number | null = null;
		const controllen = Number(msg.readBigUInt64LE(40));
		// struct cmsghdr: len (size_t), level, type, data (8-aligned)
		for (let off = 0; off + 16 <= controllen; ) {
			const len = Number(control.readBigUInt64LE(off));
			if (len < 16) break;
			if (control.readInt32LE(off + 8) === SOL_NETLINK && control.readInt32LE(off + 12) === NETLINK_LISTEN_ALL_NSID) {
				nsid = control.readInt32LE(off + 16);
			}
			off += (len + 7) & ~7;
		}
		return { length: n, nsid };
	}
}

/** poll(2) for input on FDS, at most TIMEOUTMS; the fds that are readable (or in error). */
export function pollReadable(fds: readonly number[], timeoutMs: number): number[] {
	const buf = Buffer.alloc(8 * fds.length);
	fds.forEach((fd, i) => {
		buf.writeInt32LE(fd, i * 8);
		buf.writeInt16LE(1 /* POLLIN */, i * 8 + 4);
	});
	const n = c.poll(buf, fds.length, timeoutMs) as number;
	if (n < 0) {
		const errno = lastErrno();
		if (errno === 4) return [];
		throw new LibcError('poll', errno);
	}
	return fds.filter((_, i) => buf.readInt16LE(i * 8 + 6) !== 0);
}
