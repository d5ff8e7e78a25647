// SPDX-License-Identifier: GPL-2.0-only
/**
 * A client of the agent's control API, and how the CLI finds the agent: the
 * agent started with `--api PATH` records PATH in <stateDir>/api; the CLI
 * uses the API when that socket answers and works directly otherwise
 * (IPVLAN_BPF_API=PATH names a socket explicitly, IPVLAN_BPF_API=off
 * never uses one).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection, type Socket } from 'node:net';
import { IvbError, isIvbError, isSysError, type IvbErrorCode } from '../errors.js';
import { stateDir } from '../paths.js';
import { FrameReader, MAX_RESPONSE_BYTES, decodeResponse, encodeRequest, type RequestMsg, type ResponseMsg } from './proto.js';

/** Where the agent publishes its socket path. */
export function apiPathFile(): string {
  return join(stateDir(), 'api');
}

/** The socket path the CLI should try, or null. */
function configuredApiPath(): string | null {
  const env = process.env.IPVLAN_BPF_API;
  if (env === 'off') return null;
  if (env) return env;
  try {
    const p = readFileSync(apiPathFile(), 'utf8').trim();
    return p === '' ? null : p;
  } catch (e) {
    if (isSysError(e, 'ENOENT')) return null;
    throw e;
  }
}

const KNOWN_CODES = new Set<string>([
  'IPVLAN_E_USAGE', 'IPVLAN_E_NO_DEVICE', 'IPVLAN_E_BAD_MASTER', 'IPVLAN_E_BUSY', 'IPVLAN_E_EXISTS', 'IPVLAN_E_NAME',
  'IPVLAN_E_MODE', 'IPVLAN_E_FLAG', 'IPVLAN_E_NOT_IPVLAN', 'IPVLAN_E_NETNS', 'IPVLAN_E_IPROUTE', 'IPVLAN_E_BPF',
  'IPVLAN_E_STATE', 'IPVLAN_E_LOCK', 'IPVLAN_E_AGENT',
]);

/** An Error response as the IvbError the direct path would have thrown (unknown codes: IPVLAN_E_AGENT). */
function responseError(r: ResponseMsg): IvbError | null {
  if (!r.error) return null;
  const code = (KNOWN_CODES.has(r.error.code) ? r.error.code : 'IPVLAN_E_AGENT') as IvbErrorCode;
  return new IvbError(code, r.error.message, r.error.errno || undefined);
}

export class ApiClient {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: ResponseMsg) => void; reject: (e: Error) => void; stream?: (r: ResponseMsg) => void }>();
  private readonly reader = new FrameReader(MAX_RESPONSE_BYTES);
  private closedError: Error | null = null;
  /** responses with id 0: the server could not tell which request they answer (malformed input) */
  readonly unsolicited: ResponseMsg[] = [];

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      const { bodies, tooBig, badPrefix } = this.reader.push(chunk);
      for (const b of bodies) this.dispatch(decodeResponse(b));
      if (tooBig !== null || badPrefix) this.fail(new IvbError('IPVLAN_E_AGENT', 'agent API: bad response framing'));
    });
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new IvbError('IPVLAN_E_AGENT', 'agent API: connection closed')));
  }

  static connect(path: string, timeoutMs = 2000): Promise<ApiClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      const t = setTimeout(() => {
        socket.destroy();
        reject(new IvbError('IPVLAN_E_AGENT', `${path}: the agent does not answer`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(t);
        resolve(new ApiClient(socket));
      });
      socket.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  /** The configured agent, or null when there is none (or it does not answer). */
  static async tryConfigured(): Promise<ApiClient | null> {
    const path = configuredApiPath();
    if (!path) return null;
    try {
      return await ApiClient.connect(path);
    } catch (e) {
      // no socket, nobody listening on it, or no answer in time: no agent
      if (!isSysError(e, 'ENOENT', 'ECONNREFUSED', 'ENOTSOCK', 'EACCES') && !isIvbError(e, 'IPVLAN_E_AGENT')) throw e;
      if (process.env.IPVLAN_BPF_API) throw new IvbError('IPVLAN_E_AGENT', `${path}: no agent answers (IPVLAN_BPF_API)`);
      return null;
    }
  }

  private dispatch(r: ResponseMsg): void {
    const w = this.waiting.get(r.id);
    if (!w) {
      this.unsolicited.push(r);
      return;
    }
    if (w.stream && !r.error) {
      w.stream(r);
      return;
    }
    this.waiting.delete(r.id);
    w.resolve(r);
  }

  private fail(e: Error): void {
    if (this.closedError) return;
    this.closedError = e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }

  /** Sends raw bytes (tests of malformed input). */
  writeRaw(b: Buffer): void {
    this.socket.write(b);
  }

  /** One request, one response; an Error response rejects with the matching IvbError. */
  async call(req: Omit<RequestMsg, 'id'>, timeoutMs = 0): Promise<ResponseMsg> {
    if (this.closedError) throw this.closedError;
    const id = this.nextId++;
    let timer: NodeJS.Timeout | null = null;
    const p = new Promise<ResponseMsg>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      // TIMEOUTMS > 0: a busy agent gets that long, then the caller decides
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          this.waiting.delete(id);
          reject(new IvbError('IPVLAN_E_AGENT', `the agent did not answer in ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
    this.socket.write(encodeRequest({ ...req, id }));
    let r: ResponseMsg;
    try {
      r = await p;
    } finally {
      if (timer) clearTimeout(timer);
    }
    const err = responseError(r);
    if (err) throw err;
    return r;
  }

  /**
   * A streaming request: onMessage gets each response; the promise settles
   * when the stream ends (an Error response, or the connection closing).
   */
  stream(req: Omit<RequestMsg, 'id'>, onMessage: (r: ResponseMsg) => void): Promise<ResponseMsg> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const p = new Promise<ResponseMsg>((resolve, reject) => this.waiting.set(id, { resolve, reject, stream: onMessage }));
    this.socket.write(encodeRequest({ ...req, id }));
    return p;
  }

  close(): void {
    this.socket.destroy();
  }
}
