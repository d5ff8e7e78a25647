// SPDX-License-Identifier: GPL-2.0-only
/**
 * API mutations off the agent's event loop: one worker thread
 * (mutation-worker.ts), started on the first request, runs them one after
 * the other (the state lock would serialise them anyway) while the learner
 * and the slow path keep running. A worker that dies fails what it had and
 * is started again for the next request.
 */
import { Worker } from 'node:worker_threads';
import { IvbError, type IvbErrorCode } from '../errors.js';
import type { LinkAddOptions } from '../link/manager.js';

export interface LinkAddReply {
  portId: number;
  devId: number;
  peer: string;
  peerIfindex: number;
}

export type MutationRequest =
  | { seq: number; op: 'add'; options: LinkAddOptions }
  | { seq: number; op: 'del'; name: string; netns: string | null };

export type MutationReply =
  | { seq: number; ok: LinkAddReply | null }
  | { seq: number; error: { code: string; message: string; errno: number } };

type Waiter = { resolve: (v: LinkAddReply | null) => void; reject: (e: Error) => void };

export class MutationRunner {
  private worker: Worker | null = null;
  private seq = 0;
  private readonly waiting = new Map<number, Waiter>();

  linkAdd(options: LinkAddOptions): Promise<LinkAddReply> {
    return this.send({ seq: ++this.seq, op: 'add', options }) as Promise<LinkAddReply>;
  }

  async linkDel(name: string, netns: string | null): Promise<void> {
    await this.send({ seq: ++this.seq, op: 'del', name, netns });
  }

  /** Waits (at most 20 s: longer than the state lock's wait) for what runs, then ends the worker. */
  async stop(): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (this.waiting.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  private send(req: MutationRequest): Promise<LinkAddReply | null> {
    return new Promise((resolve, reject) => {
      this.waiting.set(req.seq, { resolve, reject });
      this.start().postMessage(req);
    });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./mutation-worker.js', import.meta.url));
    w.on('message', (m: MutationReply) => {
      const waiter = this.waiting.get(m.seq);
      if (!waiter) return;
      this.waiting.delete(m.seq);
      if ('error' in m) waiter.reject(new IvbError(m.error.code as IvbErrorCode, m.error.message, m.error.errno || undefined));
      else waiter.resolve(m.ok);
    });
    const fail = (e: Error): void => {
      if (this.worker === w) this.worker = null;
      for (const waiter of this.waiting.values()) waiter.reject(e);
      this.waiting.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new IvbError('IPVLAN_E_AGENT', `mutation worker exited (${code})`)));
    // the agent may exit while the worker idles
    w.unref();
    this.worker = w;
    return w;
  }
}
