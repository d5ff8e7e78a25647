// SPDX-License-Identifier: GPL-2.0-only
/**
 * The monitor's events: switching them on in ivb_settings for as long as
 * someone listens, reading the ivb_events ring buffer, and turning each
 * struct ivb_event into a named, printable record.
 *
 * Switching: ivb_settings[0].events is one global knob. Every listener
 * (a `monitor` CLI, the agent's event stream) takes a lease, a file
 * <stateDir>/monitors/<pid> holding the level it wants; the first lease saves
 * the setting it found, every change sets the highest level any live lease
 * wants, and the last one out restores what was saved. A listener killed
 * with SIGKILL leaves a lease whose pid is dead: the next one ignores it,
 * and restores what the dead one had saved.
 *
 * Reading: a BPF ring buffer has a single consumer position, so two readers
 * would split the events between them. While the agent serves its API, the
 * CLI's `monitor` takes the agent's event stream instead of the ring.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeFd, mapLookup, mapUpdate, objGet } from '../../../native/libbpf.js';
import { RingBuffer } from '../../../native/ringbuf.js';
import { IvbAction, IvbSettingsLayout, IvbEventLayout, decodeIvbEvent, decodeIvbSettings, encodeIvbSettings, type IvbSettings } from '../../../maps/generated.js';
import { mapsPinDir, stateDir } from '../paths.js';
import { IvbError, isSysError } from '../errors.js';
import { listPorts, type PortRecord } from '../state.js';
import { reasonLabel } from '../stats/counters.js';
import { summarizeFrame } from './summary.js';

const SETTINGS_PIN = 'ivb_settings';
const EVENTS_PIN = 'ivb_events';

/** ivb_settings.events: 0 off, 1 drops only, 2 every event */
const EVENTS_DROPS = 1;
const EVENTS_ALL = 2;

const ACTION_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(IvbAction).map(([k, v]) => [v, k.toLowerCase()]),
);

export function actionName(action: number): string {
  return ACTION_NAMES[action] ?? `action_${action}`;
}

function key0(): Buffer {
  return Buffer.alloc(4);
}

function pin(name: string): string {
  const p = join(mapsPinDir(), name);
  if (!existsSync(p)) {
    throw new IvbError('IPVLAN_E_STATE', `${p} does not exist: no port has been created yet (ipvlan-bpf link add ...)`);
  }
  return p;
}

function readSettings(): IvbSettings {
  const fd = objGet(pin(SETTINGS_PIN));
  try {
    const v = mapLookup(fd, key0(), IvbSettingsLayout.size);
    return v ? decodeIvbSettings(v) : { events: 0, eventsPerSec: 0 };
  } finally {
    closeFd(fd);
  }
}

function writeSettings(s: IvbSettings): void {
  const fd = objGet(pin(SETTINGS_PIN));
  try {
    mapUpdate(fd, key0(), encodeIvbSettings(s));
  } finally {
    closeFd(fd);
  }
}

function leaseDir(): string {
  return join(stateDir(), 'monitors');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Lease {
  level: number;
  perSec: number;
}

/** Live leases other than `self` (dead holders' files are removed on the way). */
function otherLeases(self: string): Lease[] {
  const out: Lease[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(leaseDir());
  } catch (e) {
    if (isSysError(e, 'ENOENT')) return out;
    throw e;
  }
  for (const n of names) {
    if (!/^\d+(-\d+)?$/.test(n) || n === self) continue;
    const pid = Number(n.split('-')[0]);
    if (!alive(pid)) {
      rmSync(join(leaseDir(), n), { force: true });
      continue;
    }
    try {
      const l = JSON.parse(readFileSync(join(leaseDir(), n), 'utf8')) as Partial<Lease>;
      out.push({ level: Number(l.level ?? 0), perSec: Number(l.perSec ?? 0) });
    } catch (e) {
      // released meanwhile, or being written (empty): that listener is not counted
      if (!isSysError(e, 'ENOENT') && !(e instanceof SyntaxError)) throw e;
    }
  }
  return out;
}

let leaseSeq = 0;

/**
 * Turns events on at `level` (EVENTS_DROPS or EVENTS_ALL) until release() is
 * called; `perSec` (per CPU, 0 = the datapath's default) is applied too.
 */
class EventsLease {
  private readonly name: string;
  private released = false;

  constructor(
    readonly level: number,
    readonly perSec = 0,
  ) {
    mkdirSync(leaseDir(), { recursive: true, mode: 0o700 });
    this.name = `${process.pid}-${leaseSeq++}`;
    const savedPath = join(leaseDir(), 'saved');
    const others = otherLeases(this.name);
    if (!existsSync(savedPath)) {
      // the first listener: remember what to go back to. A saved file with
      // no live lease is a killed listener's: what it saved is still the
      // setting from before, the current one is the dead listener's own.
      writeFileSync(savedPath, JSON.stringify(readSettings()));
    }
    writeFileSync(join(leaseDir(), this.name), JSON.stringify({ level, perSec }));
    this.apply([...others, { level, perSec }]);
  }

  private apply(leases: Lease[]): void {
    const level = Math.max(...leases.map((l) => l.level));
    const perSecs = leases.map((l) => l.perSec).filter((n) => n > 0);
    writeSettings({ events: level, eventsPerSec: perSecs.length ? Math.max(...perSecs) : 0 });
  }

  /** Gives the lease back; the setting becomes what the remaining listeners want, or what was there before. */
  release(): void {
    if (this.released) return;
    this.released = true;
    rmSync(join(leaseDir(), this.name), { force: true });
    const others = otherLeases(this.name);
    // the maps are gone (last port deleted): nothing to restore
    if (!existsSync(pin(SETTINGS_PIN))) return;
    if (others.length > 0) {
      this.apply(others);
      return;
    }
    const savedPath = join(leaseDir(), 'saved');
    let saved: IvbSettings = { events: 0, eventsPerSec: 0 };
    try {
      saved = JSON.parse(readFileSync(savedPath, 'utf8')) as IvbSettings;
    } catch (e) {
      // nothing saved: off
      if (!isSysError(e, 'ENOENT')) throw e;
    }
    writeSettings(saved);
    rmSync(savedPath, { force: true });
  }
}

/** An event with names, as `monitor -j` prints it and the API streams it. */
export interface MonitorEvent {
  /** wall-clock time, ISO 8601 with milliseconds */
  time: string;
  /** bpf_ktime_get_ns of the decision (CLOCK_MONOTONIC) */
  ts_ns: string;
  port_id: number;
  master: string;
  /** the slave the row belongs to (sender from a slave, receiver from the wire); "" for the master */
  slave: string;
  ifindex: number;
  direction: 'from_wire' | 'from_slave';
  action: string;
  /** reason label; "none" for a plain decision */
  reason: string;
  /** where it went: a slave's name, the master's, or "" */
  target: string;
  target_ifindex: number;
  len: number;
  summary: string;
  /** the captured head of the frame, hex */
  head: string;
}

/** Names for port ids and ifindexes, refreshed when an unknown one shows up. */
class Names {
  private ports = new Map<number, PortRecord>();
  private loadedAt = 0;

  private refresh(force: boolean): void {
    if (!force && Date.now() - this.loadedAt < 1000) return;
    this.ports = new Map(listPorts().map((p) => [p.portId, p]));
    this.loadedAt = Date.now();
  }

  port(portId: number): PortRecord | undefined {
    this.refresh(false);
    let p = this.ports.get(portId);
    if (!p) {
      this.refresh(true);
      p = this.ports.get(portId);
    }
    return p;
  }

  /** a slave's name by its peer ifindex; the master's for its own ifindex */
  device(portId: number, ifindex: number): string {
    if (ifindex === 0) return '';
    const p = this.port(portId);
    if (!p) return `if${ifindex}`;
    if (p.master.ifindex === ifindex) return p.master.name;
    return p.slaves.find((s) => s.peerIfindex === ifindex)?.name ?? `if${ifindex}`;
  }
}

/** CLOCK_MONOTONIC ns -> wall clock ms (process.hrtime is CLOCK_MONOTONIC on Linux, like bpf_ktime_get_ns). */
function wallClockMs(tsNs: bigint): number {
  const nowMono = process.hrtime.bigint();
  return Date.now() - Number((nowMono - tsNs) / 1_000_000n);
}

function decodeEvent(raw: Buffer, names: Names): MonitorEvent {
  const e = decodeIvbEvent(raw);
  const head = e.head.subarray(0, Math.min(e.capLen, e.head.length));
  const port = names.port(e.portId);
  return {
    time: new Date(wallClockMs(e.tsNs)).toISOString(),
    ts_ns: e.tsNs.toString(),
    port_id: e.portId,
    master: port?.master.name ?? `port${e.portId}`,
    slave: names.device(e.portId, e.ifindex),
    ifindex: e.ifindex,
    direction: e.direction === 0 ? 'from_wire' : 'from_slave',
    action: actionName(e.action),
    reason: reasonLabel(e.reason),
    target: names.device(e.portId, e.target),
    target_ifindex: e.target,
    len: e.len,
    summary: summarizeFrame(head, e.len),
    head: head.toString('hex'),
  };
}

/** One line: time, master, slave, direction, verdict (or reason), frame. */
export function formatEvent(e: MonitorEvent): string {
  const t = e.time.slice(11, 23);
  const verdict = e.action === 'drop' ? `drop ${e.reason}` : e.reason !== 'none' ? `${e.action} (${e.reason})` : e.action;
  const to = e.target && e.target !== e.slave ? ` -> ${e.target}` : '';
  const dir = e.direction === 'from_wire' ? 'wire>' : 'slave>';
  return `${t} ${e.master} ${e.slave || '-'} ${dir} ${verdict}${to}: ${e.summary}`;
}

/**
 * Reads the ring buffer directly (no agent), taking an events lease for as
 * long as it runs. Call stop() to release both.
 */
export class DirectEventSource {
  private readonly rb: RingBuffer;
  private readonly lease: EventsLease;
  private readonly names = new Names();

  constructor(opts: { drops: boolean; perSec?: number }, onEvent: (e: MonitorEvent) => void, onError: (e: unknown) => void) {
    let live = false;
    this.rb = RingBuffer.open(pin(EVENTS_PIN), (raw) => {
      // whatever sat in the ring from before we started is not ours to show
      if (!live || raw.length < IvbEventLayout.size) return;
      const ev = decodeEvent(raw, this.names);
      // a lease for drops only may share the ring with one that wants everything
      if (opts.drops && ev.action !== 'drop') return;
      onEvent(ev);
    });
    try {
      this.rb.consume();
      live = true;
      this.lease = new EventsLease(opts.drops ? EVENTS_DROPS : EVENTS_ALL, opts.perSec ?? 0);
    } catch (e) {
      this.rb.close();
      throw e;
    }
    this.rb.pollEvery(50, onError);
  }

  stop(): void {
    try {
      // the last events before closing; a failure here must not keep the lease
      this.rb.consume();
    } finally {
      this.rb.close();
      this.lease.release();
    }
  }
}
