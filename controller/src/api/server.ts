// SPDX-License-Identifier: GPL-2.0-only
/**
 * The agent's control API on a Unix socket (messages: proto/ipvlan_bpf.proto).
 *
 * Robustness rules: a request is handled inside a try/catch and any failure
 * becomes an Error response; a request that does not decode is answered
 * with IPVLAN_E_MALFORMED and the connection stays; a frame that announces
 * more than MAX_REQUEST_BYTES is answered with IPVLAN_E_TOO_BIG and that one
 * connection is closed (its remaining bytes cannot be trusted to be frame
 * boundaries). Nothing a client sends can stop the server.
 *
 * The event stream: the agent is the ring buffer's only reader while any
 * client streams (a BPF ring buffer has one consumer position; two readers
 * would split the events), with one events lease at the highest level any
 * stream asked for.
 */
import { chmodSync, existsSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { IvbError, errorLine } from '../errors.js';
import { linkShow } from '../link/manager.js';
import { MutationRunner } from './mutations.js';
import { toJson } from '../cli/show.js';
import type { Mode, PortFlag } from '../state.js';
import { DirectEventSource, type MonitorEvent } from '../monitor/events.js';
import { takeSnapshot } from '../stats/format.js';
import { eventToMsg, linkToMsg, statsToMsg } from './convert.js';
import { FrameReader, MAX_REQUEST_BYTES, decodeRequest, encodeResponse, type RequestMsg, type ResponseMsg } from './proto.js';

export type Log = (line: string) => void;

interface Stream {
  socket: Socket;
  id: number;
  dropsOnly: boolean;
  perSec: number;
}

function errorResponse(id: number, e: unknown): ResponseMsg {
  if (e instanceof IvbError) return { id, error: { code: e.code, message: errorLine(e), errno: e.errno ?? 0 } };
  const code = (e as { code?: unknown }).code;
  return { id, error: { code: typeof code === 'string' && code.startsWith('IPVLAN_E_') ? code : 'IPVLAN_E_AGENT', message: errorLine(e), errno: 0 } };
}

/** Is something answering on this socket path? */
function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export class ApiServer {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly streams = new Set<Stream>();
  private source: DirectEventSource | null = null;
  private sourceKey = '';
  private readonly mutations = new MutationRunner();

  constructor(
    readonly path: string,
    private readonly log: Log,
  ) {}

  async start(): Promise<void> {
    if (existsSync(this.path)) {
      if (await socketAlive(this.path)) throw new IvbError('IPVLAN_E_BUSY', `${this.path}: another agent is serving there`);
      rmSync(this.path, { force: true }); // left by an agent that died
    }
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // the API can create and delete devices: root only
    chmodSync(this.path, 0o600);
    this.server = server;
  }

  async stop(): Promise<void> {
    this.stopEvents();
    // a mutation under way finishes (or undoes itself) before the agent goes
    await this.mutations.stop();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.streams.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    const reader = new FrameReader(MAX_REQUEST_BYTES);
    const send = (r: ResponseMsg): void => {
      if (!socket.destroyed) socket.write(encodeResponse(r));
    };
    const gone = (): void => {
      this.sockets.delete(socket);
      for (const st of [...this.streams]) if (st.socket === socket) this.streams.delete(st);
      this.updateEvents();
    };
    socket.on('close', gone);
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      const { bodies, tooBig, badPrefix } = reader.push(chunk);
      for (const body of bodies) {
        let req: RequestMsg;
        try {
          req = decodeRequest(body);
        } catch (e) {
          send({ id: 0, error: { code: 'IPVLAN_E_MALFORMED', message: `request does not decode: ${errorLine(e)}`, errno: 22 } });
          continue;
        }
        try {
          this.handle(req, socket, send);
        } catch (e) {
          send(errorResponse(req.id, e));
        }
      }
      if (tooBig !== null || badPrefix) {
        const message = tooBig !== null ? `request of ${tooBig} bytes is over the limit of ${MAX_REQUEST_BYTES}` : 'not a length-delimited frame';
        send({ id: 0, error: { code: tooBig !== null ? 'IPVLAN_E_TOO_BIG' : 'IPVLAN_E_MALFORMED', message, errno: tooBig !== null ? 90 : 22 } });
        socket.end();
      }
    });
  }

  private handle(req: RequestMsg, socket: Socket, send: (r: ResponseMsg) => void): void {
    const id = req.id;
    const nsOf = (s: string): string | null => (s === '' ? null : s);
    if (req.linkList) {
      const views = linkShow(req.linkList.name ?? null, nsOf(req.linkList.netns), req.linkList.onlyNetns);
      send({ id, linkList: { links: views.map((v) => linkToMsg(toJson(v), v.loc.netns === undefined)) } });
    } else if (req.linkAdd) {
      // off the event loop (mutations.ts): the learner keeps learning meanwhile
      const a = req.linkAdd;
      this.mutations
        .linkAdd({
          master: a.master,
          name: a.name,
          netns: nsOf(a.netns),
          mode: a.mode as Mode | undefined,
          flag: a.flag as PortFlag | undefined,
          typeArgs: a.typeArgs,
          mtu: a.mtu,
        })
        .then(
          (r) => {
            this.log(`api: link add ${a.name} on ${a.master}`);
            send({ id, linkAdd: r });
          },
          (e: unknown) => send(errorResponse(id, e)),
        );
    } else if (req.linkDel) {
      const name = req.linkDel.name;
      this.mutations.linkDel(name, nsOf(req.linkDel.netns)).then(
        () => {
          this.log(`api: link del ${name}`);
          send({ id, linkDel: {} });
        },
        (e: unknown) => send(errorResponse(id, e)),
      );
    } else if (req.stats) {
      const snap = takeSnapshot();
      const device = req.stats.device;
      if (device !== undefined) {
        for (const p of snap.ports) p.devices = p.devices.filter((d) => d.ifname === device);
        snap.ports = snap.ports.filter((p) => p.devices.length > 0);
      }
      send({ id, stats: statsToMsg(snap) });
    } else if (req.events) {
      this.streams.add({ socket, id, dropsOnly: req.events.dropsOnly, perSec: req.events.perSec });
      this.updateEvents();
    } else {
      throw new IvbError('IPVLAN_E_USAGE', 'request without an operation');
    }
  }

  /** (Re)opens the ring reader at the level the current streams need, or closes it when none is left. */
  private updateEvents(): void {
    if (this.streams.size === 0) {
      this.stopEvents();
      return;
    }
    const all = [...this.streams];
    const dropsOnly = all.every((s) => s.dropsOnly);
    const perSec = Math.max(0, ...all.map((s) => s.perSec));
    const key = `${dropsOnly}/${perSec}`;
    if (this.source && key === this.sourceKey) return;
    this.stopEvents();
    try {
      this.source = new DirectEventSource(
        { drops: dropsOnly, perSec },
        (e) => this.fanOut(e),
        (e) => this.log(`api: event stream failed: ${errorLine(e)}`),
      );
      this.sourceKey = key;
    } catch (e) {
      for (const s of all) {
        if (!s.socket.destroyed) s.socket.write(encodeResponse(errorResponse(s.id, e)));
        this.streams.delete(s);
      }
    }
  }

  private fanOut(e: MonitorEvent): void {
    const msg = eventToMsg(e);
    for (const s of this.streams) {
      if (s.dropsOnly && e.action !== 'drop') continue;
      if (!s.socket.destroyed) s.socket.write(encodeResponse({ id: s.id, event: msg }));
    }
  }

  private stopEvents(): void {
    this.source?.stop();
    this.source = null;
    this.sourceKey = '';
  }
}
