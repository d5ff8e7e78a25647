// SPDX-License-Identifier: GPL-2.0-only
/*
 * libbpf's BPF ring buffer consumer (ring_buffer__new/poll/consume/free)
 * through koffi, for `ipvlan-bpf monitor` and the agent's event stream.
 *
 * libbpf calls the sample callback synchronously from inside
 * ring_buffer__poll()/__consume() on the calling thread, so the callback runs
 * on the JS main thread like any other function call. Node cannot wait on an
 * epoll fd without blocking its loop, so callers poll with a zero timeout on
 * a timer (see RingBuffer.pollEvery); the ring buffer holds what arrives in
 * between (its size is the datapath's IVB_EVENTS_RING_BYTES).
 *
 * Every sample is copied out before the callback returns: libbpf releases
 * the record to the producer as soon as we return.
 */
import koffi from 'koffi';
import { BpfError, closeFd, objGet } from './libbpf.js';

const lib = koffi.load('libbpf.so.1');

type Ptr = bigint;

const SampleFn = koffi.proto('int ivb_ringbuf_sample_fn(void *ctx, void *data, size_t size)');

const f = {
	rb_new: lib.func('void *ring_buffer__new(int map_fd, ivb_ringbuf_sample_fn *sample_cb, void *ctx, void *opts)'),
	rb_poll: lib.func('int ring_buffer__poll(void *rb, int timeout_ms)'),
	rb_consume: lib.func('int ring_buffer__consume(void *rb)'),
	rb_free: lib.func('void ring_buffer__free(void *rb)'),
	rb_epoll_fd: lib.func('int ring_buffer__epoll_fd(void *rb)'),
};

const EINTR = 4;

/** One record as the BPF program submitted it (a private copy). */
export type SampleHandler = (data: Buffer) => void;

export class RingBuffer {
	#rb: Ptr | null;
	#cb: bigint | null;
	#mapFd: number;
	#ownsFd: boolean;
	#timer: NodeJS.Timeout | null = null;
	/** a handler that threw: rethrown from poll() after libbpf has returned, never across the C frame */
	#pending: unknown = undefined;

	private constructor(rb: Ptr, cb: bigint, mapFd: number, ownsFd: boolean) {
		this.#rb = rb;
		this.#cb = cb;
		this.#mapFd = mapFd;
		this.#ownsFd = ownsFd;
	}

	/**
	 * Consumer on a BPF_MAP_TYPE_RINGBUF, given by fd (kept open by the caller
	 * until close()) or by pin path (opened and closed here).
	 */
	static open(map: number | string, onSample: SampleHandler): RingBuffer {
		const ownsFd = typeof map === 'string';
		const fd = typeof map === 'string' ? objGet(map) : map;
		let self: RingBuffer | null = null;
		const cb = koffi.register((_ctx: Ptr, data: Ptr, size: number | bigint): number => {
			const n = Number(size);
			// copy: the record goes back to the producer when we return
			const copy = Buffer.alloc(n);
			if (n > 0) copy.set(new Uint8Array(koffi.view(data, n)), 0);
			try {
				onSample(copy);
			} catch (e) {
				if (self && self.#pending === undefined) self.#pending = e;
				return -1; // stops this poll round; the error surfaces from poll()
			}
			return 0;
		}, koffi.pointer(SampleFn));
		const rb = f.rb_new(fd, cb, null, null) as Ptr | null;
		if (rb === null || rb === 0n) {
			const errno = koffi.errno() || 22;
			koffi.unregister(cb);
			if (ownsFd) closeFd(fd);
			throw new BpfError(`ring_buffer__new(fd ${fd})`, errno);
		}
		self = new RingBuffer(rb, cb, fd, ownsFd);
		return self;
	}

	#handle(): Ptr {
		if (this.#rb === null) throw new Error('RingBuffer is closed');
		return this.#rb;
	}

	#rethrow(): void {
		if (this.#pending !== undefined) {
			const e = this.#pending;
			this.#pending = undefined;
			throw e;
		}
	}

	/** Waits up to timeoutMs (0: not at all) and hands every available record to the handler; returns how many. */
	poll(timeoutMs = 0): number {
		const ret = f.rb_poll(this.#handle(), timeoutMs) as number;
		this.#rethrow();
		if (ret < 0 && ret !== -EINTR && ret !== -1) throw new BpfError('ring_buffer__poll', -ret);
		return Math.max(0, ret);
	}

	/** Hands every available record to the handler without waiting; returns how many. */
	consume(): number {
		const ret = f.rb_consume(this.#handle()) as number;
		this.#rethrow();
		if (ret < 0 && ret !== -1) throw new BpfError('ring_buffer__consume', -ret);
		return Math.max(0, ret);
	}

	/** The epoll fd libbpf waits on (for callers with their own event loop). */
	epollFd(): number {
		return f.rb_epoll_fd(this.#handle()) as number;
	}

	/**
	 * Drains the ring every intervalMs from a timer, so the JS loop never
	 * blocks; onError gets a failing drain (the timer then stops).
	 */
	pollEvery(intervalMs: number, onError: (e: unknown) => void): void {
		if (this.#timer) return;
		this.#timer = setInterval(() => {
			try {
				this.consume();
			} catch (e) {
				this.stopPolling();
				onError(e);
			}
		}, intervalMs);
	}

	stopPolling(): void {
		if (this.#timer) clearInterval(this.#timer);
		this.#timer = null;
	}

	/** Frees the consumer (and the map fd when opened from a pin). Idempotent. */
	close(): void {
		this.stopPolling();
		if (this.#rb !== null) {
			f.rb_free(this.#rb);
			this.#rb = null;
		}
		if (this.#cb !== null) {
			koffi.unregister(this.#cb);
			this.#cb = null;
		}
		if (this.#ownsFd && this.#mapFd >= 0) {
			closeFd(this.#mapFd);
			this.#mapFd = -1;
		}
	}
}
