// SPDX-License-Identifier: GPL-2.0-only
/**
 * rtnetlink notifications for the learner, instead of `ip monitor`: link and
 * address events of each watched namespace and of the namespaces it has an
 * nsid for (NETLINK_LISTEN_ALL_NSID), decoded in a worker thread
 * (listener-worker.ts) and delivered here in batches. A socket holds its
 * namespace, as the `ip monitor` it replaces did: unwatch lets it go.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { initNetnsPath, netnsPath } from './netns.js';

/** One notification, as the learner reads it (`ip -o monitor` carried the same). */
export interface RtnlEvent {
  /** 'current' for the watched namespace itself, else the nsid it gives the other one */
  nsid: string;
  deleted: boolean;
  ifindex: number;
  /** mcast: the device joined or left an IP multicast group (its link-layer list changed) */
  kind: 'addr' | 'link' | 'mcast';
  family?: 4 | 6;
  addr?: string;
  prefixlen?: number;
  ifname?: string;
  flags?: string[];
  mtu?: number;
  mac?: string;
  alias?: string;
}

export type ListenerControl = { op: 'watch'; key: string; path: string } | { op: 'unwatch'; key: string } | { op: 'stop' };

export type ListenerReport =
  | { key: string; events: RtnlEvent[] }
  /** multicastEvents: the kernel reports group joins (6.13+); else they are found by re-reading */
  | { key: string; ready: true; multicastEvents: boolean }
  /** the namespace could not be entered (deleted meanwhile) */
  | { key: string; error: string }
  /** notifications were lost (ENOBUFS): what is known must be read again */
  | { key: string; overflow: string };

export class RtnlListener {
  private worker: Worker | null = null;
  private control: MessageChannel | null = null;

  constructor(private readonly onReport: (r: ListenerReport) => void) {}

  watch(key: string, netns: string | null): void {
    this.post({ op: 'watch', key, path: netns === null ? initNetnsPath() : netnsPath(netns) });
  }

  unwatch(key: string): void {
    if (this.worker) this.post({ op: 'unwatch', key });
  }

  async stop(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (!w) return;
    const control = this.control!;
    this.control = null;
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    control.port1.postMessage({ op: 'stop' } satisfies ListenerControl);
    // it leaves its poll within 50 ms; a hung one is ended
    const t = setTimeout(() => void w.terminate(), 1000);
    await exited;
    clearTimeout(t);
    control.port1.close();
  }

  private post(m: ListenerControl): void {
    this.start().port1.postMessage(m);
  }

  private start(): MessageChannel {
    if (this.worker && this.control) return this.control;
    const control = new MessageChannel();
    const w = new Worker(new URL('./listener-worker.js', import.meta.url), {
      workerData: { port: control.port2 },
      transferList: [control.port2],
    });
    w.on('message', (r: ListenerReport) => this.onReport(r));
    w.on('error', (e) => {
      if (this.worker === w) {
        this.worker = null;
        this.control = null;
      }
      // every watch is lost with it: the learner watches again and resyncs
      this.onReport({ key: '*', overflow: `listener thread failed: ${e.message}` });
    });
    this.worker = w;
    this.control = control;
    return control;
  }
}
