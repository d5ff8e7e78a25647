// SPDX-License-Identifier: GPL-2.0-only
/**
 * The CNI side of the plugin: spec versions, error codes, the network
 * configuration (the reference ipvlan plugin's keys plus `flag`) and the
 * result types. Kept free of anything heavy (no libbpf, no child processes)
 * so that VERSION and config errors answer at node's start-up cost alone.
 */

/** Versions we answer to; results are written in the version the config asks for. */
export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
/** libcni reads a config without "cniVersion" as 0.1.0 (the cni.dev examples have none) */
const LEGACY_DEFAULT_VERSION = '0.1.0';
export const CURRENT_VERSION = '1.1.0';

/** The spec's well-known error codes (CNI 1.1 §"Error"). */
export const CNI_E = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN: 11,
  NOT_AVAILABLE: 50,
  LIMITED_CONNECTIVITY: 51,
  /** what libcni's skel uses for errors without a code of their own */
  INTERNAL: 999,
} as const;

export class CniError extends Error {
  override readonly name = 'CniError';
  constructor(
    readonly code: number,
    message: string,
    readonly details?: string,
  ) {
    super(message);
  }
}

/** The error as the spec writes it on stdout. */
export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function isSupportedVersion(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

export type CniMode = 'l2' | 'l3' | 'l3s';
export type CniFlag = 'bridge' | 'private' | 'vepa';

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface CniIpConfig {
  /** CIDR: address/prefix */
  address: string;
  gateway?: string;
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

export interface IpamConf {
  type?: string;
  [key: string]: unknown;
}

export interface Attachment {
  containerID: string;
  ifname: string;
}

/** The network configuration, validated; `raw` is what came on stdin (IPAM gets it unchanged). */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  /** empty: the default route's interface, or prevResult's single interface when chained */
  master: string;
  mode: CniMode;
  flag: CniFlag;
  /** 0: the master's MTU */
  mtu: number;
  linkInContainer: boolean;
  ipam: IpamConf | null;
  dns: CniDns | undefined;
  prevResult: CniResult | null;
  validAttachments: Attachment[] | null;
  raw: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function invalid(msg: string): CniError {
  return new CniError(CNI_E.INVALID_CONFIG, msg);
}

function optString(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(`"${key}" must be a string`);
  return v;
}

/** Network names become file names (host-local's, ours): the spec's character set only. */
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Parses stdin: JSON errors are code 6, wrong keys or values code 7, an unknown version code 1. */
export function parseNetConf(raw: string): NetConf {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    throw new CniError(CNI_E.DECODE, 'failed to decode the network configuration', e instanceof Error ? e.message : String(e));
  }
  if (!isObject(parsed)) throw new CniError(CNI_E.DECODE, 'the network configuration is not a JSON object');
  const o = parsed;
  const cniVersion = optString(o, 'cniVersion') || LEGACY_DEFAULT_VERSION;
  if (!isSupportedVersion(cniVersion)) {
    throw new CniError(
      CNI_E.INCOMPATIBLE_VERSION,
      'incompatible CNI versions',
      `config is "${cniVersion}", plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`,
    );
  }
  const name = optString(o, 'name');
  if (!name) throw invalid('"name" is missing');
  if (!NAME_RE.test(name)) throw invalid(`"name" ${JSON.stringify(name)} may hold only letters, digits, "_", "." and "-"`);
  const type = optString(o, 'type');
  if (!type) throw invalid('"type" is missing');
  const master = optString(o, 'master') ?? '';
  if (master !== '' && (Buffer.byteLength(master) > 15 || /[/:\s]/.test(master))) {
    throw invalid(`"master" ${JSON.stringify(master)} is not an interface name`);
  }
  const modeText = optString(o, 'mode') ?? '';
  let mode: CniMode;
  // the reference plugin's modeFromString: "" is l2 (the kernel's own default is l3)
  if (modeText === '' || modeText === 'l2') mode = 'l2';
  else if (modeText === 'l3' || modeText === 'l3s') mode = modeText;
  else throw invalid(`unknown ipvlan mode: ${JSON.stringify(modeText)} (l2, l3 or l3s)`);
  const flagText = optString(o, 'flag') ?? '';
  let flag: CniFlag;
  if (flagText === '' || flagText === 'bridge') flag = 'bridge';
  else if (flagText === 'private' || flagText === 'vepa') flag = flagText;
  else throw invalid(`unknown ipvlan flag: ${JSON.stringify(flagText)} (bridge, private or vepa)`);
  const mtuV = o.mtu;
  let mtu = 0;
  if (mtuV !== undefined && mtuV !== null) {
    if (typeof mtuV !== 'number' || !Number.isInteger(mtuV) || mtuV < 0 || mtuV > 65535) {
      throw invalid('"mtu" must be an integer between 0 and 65535');
    }
    // the kernel's minimum for an Ethernet device carrying IPv4
    if (mtuV !== 0 && mtuV < 68) throw invalid(`"mtu" ${mtuV} is below 68`);
    mtu = mtuV;
  }
  const lic = o.linkInContainer;
  if (lic !== undefined && lic !== null && typeof lic !== 'boolean') throw invalid('"linkInContainer" must be a boolean');
  let ipam: IpamConf | null = null;
  if (o.ipam !== undefined && o.ipam !== null) {
    if (!isObject(o.ipam)) throw invalid('"ipam" must be an object');
    const t = o.ipam.type;
    if (t !== undefined && typeof t !== 'string') throw invalid('"ipam.type" must be a string');
    ipam = o.ipam as IpamConf;
    if (!ipam.type) ipam = null;
  }
  let prevResult: CniResult | null = null;
  if (o.prevResult !== undefined && o.prevResult !== null) prevResult = parseResult(o.prevResult, 'prevResult');
  let validAttachments: Attachment[] | null = null;
  const va = o['cni.dev/valid-attachments'];
  if (va !== undefined && va !== null) {
    if (!Array.isArray(va)) throw invalid('"cni.dev/valid-attachments" must be an array');
    validAttachments = va.map((a, i) => {
      if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
        throw invalid(`"cni.dev/valid-attachments"[${i}] needs string "containerID" and "ifname"`);
      }
      return { containerID: a.containerID, ifname: a.ifname };
    });
  }
  return {
    cniVersion,
    name,
    type,
    master,
    mode,
    flag,
    mtu,
    linkInContainer: lic === true,
    ipam,
    dns: isObject(o.dns) ? (o.dns as CniDns) : undefined,
    prevResult,
    validAttachments,
    raw,
  };
}

/**
 * A result in any supported version (IPAM's answer, or prevResult): 0.3/0.4
 * `ips[].version` is dropped, since 1.0 infers the family from the address.
 */
export function parseResult(v: unknown, what: string): CniResult {
  if (!isObject(v)) throw invalid(`${what} is not an object`);
  const out: CniResult = { cniVersion: typeof v.cniVersion === 'string' ? v.cniVersion : CURRENT_VERSION };
  if (Array.isArray(v.interfaces)) {
    out.interfaces = v.interfaces.map((i, n) => {
      if (!isObject(i) || typeof i.name !== 'string') throw invalid(`${what}.interfaces[${n}] has no name`);
      const itf: CniInterface = { name: i.name };
      if (typeof i.mac === 'string') itf.mac = i.mac;
      if (typeof i.mtu === 'number') itf.mtu = i.mtu;
      if (typeof i.sandbox === 'string') itf.sandbox = i.sandbox;
      return itf;
    });
  }
  if (Array.isArray(v.ips)) {
    out.ips = v.ips.map((i, n) => {
      if (!isObject(i) || typeof i.address !== 'string' || !parseCidr(i.address)) {
        throw invalid(`${what}.ips[${n}] has no valid "address"`);
      }
      const ipc: CniIpConfig = { address: i.address };
      if (typeof i.gateway === 'string') ipc.gateway = i.gateway;
      if (typeof i.interface === 'number') ipc.interface = i.interface;
      return ipc;
    });
  }
  if (Array.isArray(v.routes)) {
    out.routes = v.routes.map((r, n) => {
      if (!isObject(r) || typeof r.dst !== 'string' || !parseCidr(r.dst)) throw invalid(`${what}.routes[${n}] has no valid "dst"`);
      const rt: CniRoute = { dst: r.dst };
      if (typeof r.gw === 'string') rt.gw = r.gw;
      for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
        const x = r[k];
        if (typeof x === 'number') rt[k] = x;
      }
      return rt;
    });
  }
  if (isObject(v.dns)) out.dns = v.dns as CniDns;
  // 0.1.0/0.2.0: one "ip4" and one "ip6" object, each with its own routes
  for (const key of ['ip4', 'ip6'] as const) {
    const l = v[key];
    if (!isObject(l)) continue;
    if (typeof l.ip !== 'string' || !parseCidr(l.ip)) throw invalid(`${what}.${key} has no valid "ip"`);
    (out.ips ??= []).push({ address: l.ip, ...(typeof l.gateway === 'string' ? { gateway: l.gateway } : {}) });
    if (Array.isArray(l.routes)) {
      for (const r of l.routes) {
        if (!isObject(r) || typeof r.dst !== 'string' || !parseCidr(r.dst)) continue;
        (out.routes ??= []).push({ dst: r.dst, ...(typeof r.gw === 'string' ? { gw: r.gw } : {}) });
      }
    }
  }
  return out;
}

/** 0.1.0/0.2.0 results: the first address of each family, with the routes of that family. */
function legacyResult(r: CniResult, version: string): Record<string, unknown> {
  const out: Record<string, unknown> = { cniVersion: version };
  for (const [key, fam] of [['ip4', 4], ['ip6', 6]] as const) {
    const ipc = (r.ips ?? []).find((i) => parseCidr(i.address)?.family === fam);
    if (!ipc) continue;
    const routes = (r.routes ?? []).filter((rt) => parseCidr(rt.dst)?.family === fam).map((rt) => ({ dst: rt.dst, ...(rt.gw ? { gw: rt.gw } : {}) }));
    out[key] = { ip: ipc.address, ...(ipc.gateway ? { gateway: ipc.gateway } : {}), ...(routes.length ? { routes } : {}) };
  }
  out.dns = r.dns ?? {};
  return out;
}

export interface Cidr {
  family: 4 | 6;
  addr: string;
  prefixlen: number;
}

/** "198.18.0.5/24" or "2001:db8::5/64" -> parts; null when malformed. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.lastIndexOf('/');
  if (slash < 0) return null;
  const addr = text.slice(0, slash);
  const prefixlen = Number(text.slice(slash + 1));
  const family: 4 | 6 = addr.includes(':') ? 6 : 4;
  if (!Number.isInteger(prefixlen) || prefixlen < 0 || prefixlen > (family === 4 ? 32 : 128)) return null;
  if (family === 4 && !/^\d{1,3}(\.\d{1,3}){3}$/.test(addr)) return null;
  if (family === 6 && !/^[0-9a-fA-F:.]+$/.test(addr)) return null;
  return { family, addr, prefixlen };
}

/** Writes a result in the config's version: 0.3/0.4 carry ips[].version, 1.1-only fields go below 1.1. */
export function resultForVersion(r: CniResult, version: string): Record<string, unknown> {
  if (compareVersions(version, '0.3.0') < 0) return legacyResult(r, version);
  const v11 = compareVersions(version, '1.1.0') >= 0;
  const v10 = compareVersions(version, '1.0.0') >= 0;
  const out: Record<string, unknown> = { cniVersion: version };
  if (r.interfaces) {
    out.interfaces = r.interfaces.map((i) => {
      const o: Record<string, unknown> = { name: i.name };
      if (i.mac !== undefined) o.mac = i.mac;
      if (v11 && i.mtu !== undefined) o.mtu = i.mtu;
      if (i.sandbox !== undefined) o.sandbox = i.sandbox;
      return o;
    });
  }
  if (r.ips) {
    out.ips = r.ips.map((i) => {
      const o: Record<string, unknown> = {};
      if (!v10) o.version = i.address.includes(':') ? '6' : '4';
      o.address = i.address;
      if (i.gateway !== undefined) o.gateway = i.gateway;
      if (i.interface !== undefined) o.interface = i.interface;
      return o;
    });
  }
  if (r.routes) {
    out.routes = r.routes.map((rt) => {
      const o: Record<string, unknown> = { dst: rt.dst };
      if (rt.gw !== undefined) o.gw = rt.gw;
      if (v11) for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) if (rt[k] !== undefined) o[k] = rt[k];
      return o;
    });
  }
  out.dns = r.dns ?? {};
  return out;
}
