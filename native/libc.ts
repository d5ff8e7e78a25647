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
};

export const O_RDONLY = 0;
export const O_CLOEXEC = 0o2000000;
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
