// SPDX-License-Identifier: GPL-2.0-only
/**
 * ADD, DEL, CHECK, GC and STATUS on top of the link manager.
 *
 * Namespaces: the master lives in the namespace the runtime runs us in (the
 * "host" namespace: init, or one named under /run/netns); the container's
 * is a path (CNI_NETNS: /run/netns/X, /var/run/netns/X, /proc/PID/ns/net,
 * ...). The veth pair is made by one request in the master's namespace,
 * the slave end straight in the container under CNI_IFNAME (its name need
 * only be free there, so the reference plugin's temporary name in the host
 * is not needed). Everything inside the container is done from this
 * process, through rtnetlink and /proc/sys after setns() into the file
 * CNI_NETNS names, so no namespace has to be given a name for us.
 *
 * Addresses: the plugin knows the container's IPs from IPAM, so it writes
 * them (and the slave's dev_id link-local) into the datapath's address map
 * itself, under the state lock, and marks the slave up in the slave map:
 * traffic flows as soon as ADD returns, agent or not. The agent, when it
 * runs, learns the same addresses from the kernel and agrees.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { IvbError, errorLine, isIvbError, isSysError } from '../errors.js';
import { getLink, listAddrs, listLinks, type IpLink } from '../netlink/links.js';
import {
  currentNetnsInode,
  initNetnsInode,
  netnsInodeOfPath,
  netnsNameOfInode,
  netnsPath,
  NETNS_RUN_DIR,
  type NetnsRef,
} from '../netlink/netns.js';
import { listPorts, readPort, withLock, type PortRecord } from '../state.js';
import { bpffsRoot, repoRoot, stateDir } from '../paths.js';
import { linkAdd, pruneSlave } from '../link/manager.js';
import { giveSlaveLinkLocal, slaveLinkLocal } from '../link/link-local.js';
import { IFF_UP, RT_TABLE_MAIN, rtnlRoutes, withRtnl, type RtnlWriter } from '../netlink/rtnl.js';
import { sysctlWrite } from '../netlink/sysctl.js';
import { addrBytes } from '../netlink/addr.js';
import { parseAlias } from '../link/slaves.js';
import { setSlaveRoute } from '../link/hostnet.js';
import {
  addrOwner,
  clearGuard,
  learnAddr,
  setGuard,
  SLAVE_SAME_NETNS,
  SLAVE_UP,
  writeSlaveEntry,
} from '../bpf/datapath.js';
import { enterInitNetns } from '../netlink/context.js';
import { execIpam, findPlugin, ipamKnows11 } from './ipam.js';
import { listRecords, readRecord, removeRecord, writeRecord, type AttachmentRecord } from './attachments.js';
import {
  CNI_E,
  CniError,
  compareVersions,
  parseCidr,
  type CniIpConfig,
  type CniResult,
  type CniRoute,
  type NetConf,
} from './types.js';

export type Log = (line: string) => void;

export interface CniEnv {
  containerId: string;
  netns: string;
  ifname: string;
  cniPath: string;
}

// ---------------------------------------------------------------- namespaces

/** The namespace we were started in, by its /run/netns name (null: init). */
function hostNetns(): string | null {
  const ino = currentNetnsInode();
  if (ino === initNetnsInode()) return null;
  const name = netnsNameOfInode(ino);
  if (name === null) {
    // the port record names the master's namespace; an unnamed one could not be found again
    throw new CniError(CNI_E.INVALID_ENV, 'the runtime runs the plugin in a network namespace that has no name under /run/netns');
  }
  return name;
}

/** The /run/netns name of the namespace at PATH, or null (needed only for linkInContainer). */
function nameOfNetnsPath(path: string): string | null {
  try {
    const real = realpathSync(path);
    if (dirname(real) === NETNS_RUN_DIR) return basename(real);
    return netnsNameOfInode(statSync(path).ino);
  } catch (e) {
    // the container's namespace is gone already
    if (isSysError(e, 'ENOENT', 'ENOTDIR')) return null;
    throw e;
  }
}

function netnsPathExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (e) {
    if (isSysError(e, 'ENOENT', 'ENOTDIR')) return false;
    throw e;
  }
}

/** The link NAME in the namespace at NSPATH (rtnetlink there); null when there is none. */
function nsLink(nsPath: string, name: string): IpLink | null {
  return getLink(name, { file: nsPath });
}

// ---------------------------------------------------------------- master

/** The interface of the first default route (IPv4, then IPv6), as the reference plugin picks it. */
function defaultRouteInterface(netns: string | null): string {
  for (const fam of [4, 6] as const) {
    const oif = rtnlRoutes(netns, fam, RT_TABLE_MAIN).find((r) => r.dstLen === 0 && r.oif !== null)?.oif;
    const dev = oif !== undefined && oif !== null ? listLinks(netns).find((l) => l.ifindex === oif)?.ifname : undefined;
    if (dev) return dev;
  }
  throw new CniError(CNI_E.INVALID_CONFIG, 'no "master" given and no default route to take it from');
}

function resolveMasterName(conf: NetConf, netns: string | null): string {
  if (conf.master) return conf.master;
  if (conf.prevResult) {
    // chained: the previous plugin's single interface becomes the master
    const named = (conf.prevResult.interfaces ?? []).filter((i) => i.name !== '');
    if (named.length !== 1 || !named[0]) {
      throw new CniError(CNI_E.INVALID_CONFIG, 'chained master failure: prevResult lacks a single named interface');
    }
    return named[0].name;
  }
  return defaultRouteInterface(netns);
}

function portOfMaster(link: IpLink, netns: string | null): PortRecord | null {
  const ino = netns === null ? initNetnsInode() : netnsInodeOfPath(netnsPath(netns));
  return listPorts().find((p) => p.master.netnsIno === ino && p.master.ifindex === link.ifindex) ?? null;
}

// ---------------------------------------------------------------- helpers

function undoAll(stack: Array<() => void>, log: Log): void {
  for (const u of stack.reverse()) {
    try {
      u();
    } catch (e) {
      log(`cleanup step failed: ${errorLine(e)}`);
    }
  }
}

function ipamEnv(command: string, env: CniEnv): { command: string; containerId: string; netns: string; ifname: string } {
  return { command, containerId: env.containerId, netns: env.netns, ifname: env.ifname };
}

/** A CNI route (1.1 fields included) added as `ip route add` would, out of the container's interface. */
function addRoute(w: RtnlWriter, rt: CniRoute, gw: string | undefined, ifindex: number, ifname: string): void {
  const c = parseCidr(rt.dst);
  if (!c) throw new CniError(CNI_E.INVALID_CONFIG, `route "${rt.dst}" is not an address/prefix length`);
  const words = [`route add ${rt.dst}`, gw ? `via ${gw}` : '', `dev ${ifname}`].filter(Boolean).join(' ');
  w.addRoute({
    family: c.family,
    dst: addrBytes(c.family, c.addr),
    dstLen: c.prefixlen,
    oif: ifindex,
    ...(gw ? { gateway: addrBytes(c.family, gw) } : {}),
    ...(rt.priority !== undefined ? { priority: rt.priority } : {}),
    ...(rt.table !== undefined ? { table: rt.table } : {}),
    ...(rt.scope !== undefined ? { scope: rt.scope } : {}),
    ...(rt.mtu !== undefined ? { mtu: rt.mtu } : {}),
    ...(rt.advmss !== undefined ? { advmss: rt.advmss } : {}),
    what: words,
  });
}

/**
 * A route's gateway as libcni's ConfigureIface picks it: its own, else the
 * gateway of the first IP of the same family that has one.
 */
function routeGateway(rt: CniRoute, ips: CniIpConfig[]): string | undefined {
  if (rt.gw) return rt.gw;
  const fam = parseCidr(rt.dst)?.family;
  return ips.find((i) => i.gateway && parseCidr(i.address)?.family === fam)?.gateway;
}

function sameAddr(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

// ---------------------------------------------------------------- ADD

/** Stage timings for IPVLAN_BPF_CNI_TIMING (where an ADD's time goes). */
function stopwatch(log: Log): (stage: string) => void {
  if (!process.env.IPVLAN_BPF_CNI_TIMING) return () => {};
  let t = performance.now();
  return (stage) => {
    const now = performance.now();
    log(`  ${stage}: ${(now - t).toFixed(1)} ms`);
    t = now;
  };
}

export function cmdAdd(conf: NetConf, env: CniEnv, log: Log): Record<string, unknown> | CniResult {
  const lap = stopwatch(log);
  if (!netnsPathExists(env.netns)) throw new CniError(CNI_E.UNKNOWN_CONTAINER, `failed to open netns "${env.netns}"`);
  const host = hostNetns();
  let masterNs = host;
  if (conf.linkInContainer) {
    const name = nameOfNetnsPath(env.netns);
    if (name === null) {
      throw new CniError(CNI_E.INVALID_CONFIG, `linkInContainer needs a container namespace named under ${NETNS_RUN_DIR}; "${env.netns}" has none`);
    }
    masterNs = name;
  }
  const masterName = resolveMasterName(conf, masterNs);
  enterInitNetns();
  lap('resolve');
  if (nsLink(env.netns, env.ifname)) {
    throw new CniError(CNI_E.INTERNAL, `container veth name "${env.ifname}" already exists in ${env.netns}`);
  }
  const undo: Array<() => void> = [];
  try {
    // --- the link: its veth pair made by one request, the slave straight in the container under
    // CNI_IFNAME (no temporary name in the host, no move: a name need only be free in the container)
    const inside: NetnsRef = { file: env.netns };
    const made = withLock(() => {
      const master = getLink(masterName, masterNs);
      if (!master) throw new CniError(CNI_E.INVALID_CONFIG, `failed to find master "${masterName}"${masterNs ? ` in netns ${masterNs}` : ''}`);
      if (conf.mtu > master.mtu) {
        throw new CniError(CNI_E.INVALID_CONFIG, `"mtu" ${conf.mtu} is above the MTU ${master.mtu} of master ${masterName}`);
      }
      const port = portOfMaster(master, masterNs);
      if (port && port.slaves.length > 0 && (port.mode !== conf.mode || port.flag !== conf.flag)) {
        // the reference plugin silently switches every container on this master; we refuse instead
        throw new CniError(
          CNI_E.INVALID_CONFIG,
          `master ${masterName} is in use in mode ${port.mode} ${port.flag} by ${port.slaves.length} other interface(s); ` +
            `this network asks for ${conf.mode} ${conf.flag} (mode and flag are per master)`,
        );
      }
      try {
        return linkAdd({
          master: masterName,
          name: env.ifname,
          netns: masterNs,
          slaveNetns: inside,
          mode: conf.mode,
          flag: conf.flag,
          typeArgs: true,
          ...(conf.mtu > 0 ? { mtu: conf.mtu } : {}),
        });
      } catch (e) {
        if (e instanceof IvbError && (e.code === 'IPVLAN_E_BAD_MASTER' || e.code === 'IPVLAN_E_BUSY' || e.code === 'IPVLAN_E_NO_DEVICE')) {
          throw new CniError(CNI_E.INVALID_CONFIG, e.message);
        }
        if (e instanceof IvbError && e.code === 'IPVLAN_E_EXISTS') {
          throw new CniError(CNI_E.INTERNAL, `container veth name "${env.ifname}" already exists in ${env.netns}`);
        }
        throw e;
      }
    });
    const { port, slave } = made;
    lap('link add (the pair, the slave in the container)');
    undo.push(() => pruneSlave(port.portId, slave.peerName, slave.peerIfindex));
    const link = getLink(env.ifname, inside);
    if (!link) throw new CniError(CNI_E.INTERNAL, `${env.ifname} vanished from ${env.netns}`);

    const record: AttachmentRecord = {
      network: conf.name,
      containerId: env.containerId,
      ifname: env.ifname,
      netns: env.netns,
      portId: port.portId,
      peerName: slave.peerName,
      peerIfindex: slave.peerIfindex,
      config: conf.raw,
      ips: [],
    };
    writeRecord(record);
    undo.push(() => removeRecord(conf.name, env.containerId, env.ifname));
    lap('record');

    // --- addresses: IPAM, or the previous plugin's when chained without IPAM
    let ipamResult: CniResult;
    if (conf.ipam?.type) {
      const r = execIpam(conf.ipam.type, env.cniPath, conf.raw, conf.cniVersion, ipamEnv('ADD', env));
      const ipamType = conf.ipam.type;
      undo.push(() => {
        execIpam(ipamType, env.cniPath, conf.raw, conf.cniVersion, ipamEnv('DEL', env));
      });
      if (!r) throw new CniError(CNI_E.INTERNAL, 'IPAM plugin returned no result');
      ipamResult = r;
    } else if (conf.prevResult && (conf.prevResult.ips ?? []).length > 0) {
      ipamResult = conf.prevResult;
    } else {
      throw new CniError(CNI_E.INVALID_CONFIG, '"ipam" with a "type" is required unless prevResult holds IPs');
    }
    lap('IPAM');
    const ips = (ipamResult.ips ?? []).map((i) => ({ ...i, interface: 0 }));
    if (ips.length === 0) throw new CniError(CNI_E.INTERNAL, 'IPAM plugin returned missing IP config');
    const cidrs = ips.map((i) => {
      const c = parseCidr(i.address);
      if (!c) throw new CniError(CNI_E.INTERNAL, `bad address ${i.address} from IPAM`);
      return c;
    });
    for (const c of cidrs) {
      const owner = addrOwner(port.portId, c);
      if (owner !== null && owner !== slave.peerIfindex) {
        throw new CniError(CNI_E.INTERNAL, `address ${c.addr} is already assigned to another slave of master ${masterName}`);
      }
    }
    record.ips = ips.map((i) => i.address);
    writeRecord(record);

    // --- the interface inside: notify sysctls, link-local, addresses, up, routes (rtnetlink and /proc/sys, in its namespace)
    const hasV6 = cidrs.some((c) => c.family === 6);
    const sysctls: Array<[string, string]> = [[`net/ipv4/conf/${env.ifname}/arp_notify`, '1'], [`net/ipv6/conf/${env.ifname}/ndisc_notify`, '1']];
    if (hasV6) sysctls.push([`net/ipv6/conf/${env.ifname}/disable_ipv6`, '0']);
    for (const [key, value] of sysctls) {
      // a key this kernel lacks (IPv6 off) is skipped, as `sysctl -e` did
      if (!sysctlWrite(key, value, inside)) log(`sysctl ${key} does not exist in ${env.netns}`);
    }
    const mac = link.address ?? port.master.mac;
    const ll = slaveLinkLocal(mac, slave.devId);
    const llOk = giveSlaveLinkLocal({ netns: inside, ifname: env.ifname, ifindex: link.ifindex, want: ll, present: [] });
    try {
      withRtnl(inside, (w) => {
        for (const c of cidrs) w.addAddr(link.ifindex, c.family, addrBytes(c.family, c.addr), c.prefixlen, { what: `addr add ${c.addr}/${c.prefixlen} dev ${env.ifname}` });
        // addresses before up: the gratuitous ARP of arp_notify then announces them
        w.setLink(env.ifname, { flags: IFF_UP, mask: IFF_UP });
        for (const rt of ipamResult.routes ?? []) addRoute(w, rt, routeGateway(rt, ips), link.ifindex, env.ifname);
      });
    } catch (e) {
      if (isIvbError(e, 'IPVLAN_E_IPROUTE')) throw new CniError(CNI_E.INTERNAL, `configuring the container interface: ${e.message}`);
      throw e;
    }

    lap('configure inside');
    // --- the datapath: up, where the slave lives, and its addresses
    const nsIno = statSync(env.netns).ino;
    withLock(() => {
      const sameNs = conf.linkInContainer ? SLAVE_SAME_NETNS : 0;
      writeSlaveEntry(port.portId, slave.peerIfindex, { devId: slave.devId, flags: SLAVE_UP | sameNs, mtu: link.mtu });
      clearGuard(port.portId, slave.peerIfindex);
      setGuard(nsIno, link.ifindex, port.portId, slave.peerIfindex);
      for (const c of cidrs) {
        learnAddr(port.portId, slave.peerIfindex, c);
        setSlaveRoute(port, { name: slave.peerName, ifindex: slave.peerIfindex }, c, true);
      }
      if (llOk) learnAddr(port.portId, slave.peerIfindex, { family: 6, addr: ll, prefixlen: 64 });
    });
    lap('learn');
    log(`ADD ${env.containerId}/${env.ifname}: ${port.master.name} ${conf.mode} ${conf.flag}, ${record.ips.join(' ')}`);
    return {
      cniVersion: conf.cniVersion,
      interfaces: [{ name: env.ifname, mac, mtu: link.mtu, sandbox: env.netns }],
      ips,
      routes: ipamResult.routes ?? [],
      // as the reference: the config's dns, not IPAM's
      ...(conf.dns ? { dns: conf.dns } : ipamResult.dns ? { dns: ipamResult.dns } : {}),
    };
  } catch (e) {
    undoAll(undo, log);
    throw e;
  }
}

// ---------------------------------------------------------------- DEL

/** Removes our slave for (netns, ifname) or, failing that, the one the record names. Never fails on absence. */
function teardownLink(netns: string | undefined, ifname: string, rec: AttachmentRecord | null, log: Log): void {
  withLock(() => {
    if (netns && netnsPathExists(netns)) {
      const link = nsLink(netns, ifname);
      const alias = parseAlias(link?.ifalias);
      if (link && alias) {
        const port = readPort(alias.portId);
        const s = port?.slaves.find((x) => x.peerName === alias.peerName);
        if (port && s && (link.link_index === undefined || link.link_index === s.peerIfindex)) {
          pruneSlave(port.portId, s.peerName, s.peerIfindex);
          return;
        }
      } else if (link) {
        log(`${ifname} in ${netns} is not an ipvlan-bpf slave: left alone`);
      }
    }
    if (rec) {
      const port = readPort(rec.portId);
      const s = port?.slaves.find((x) => x.peerName === rec.peerName && x.peerIfindex === rec.peerIfindex);
      if (port && s) pruneSlave(port.portId, s.peerName, s.peerIfindex);
    }
  });
}

export function cmdDel(conf: NetConf, env: Partial<CniEnv> & { containerId: string; ifname: string; cniPath: string }, log: Log): void {
  const rec = readRecord(conf.name, env.containerId, env.ifname);
  if (conf.ipam?.type) {
    execIpam(conf.ipam.type, env.cniPath, conf.raw, conf.cniVersion, {
      command: 'DEL',
      containerId: env.containerId,
      ifname: env.ifname,
      ...(env.netns ? { netns: env.netns } : {}),
    });
  }
  enterInitNetns();
  teardownLink(env.netns, env.ifname, rec, log);
  removeRecord(conf.name, env.containerId, env.ifname);
}

// ---------------------------------------------------------------- CHECK

export function cmdCheck(conf: NetConf, env: CniEnv, log: Log): void {
  if (compareVersions(conf.cniVersion, '0.4.0') < 0) {
    throw new CniError(CNI_E.INCOMPATIBLE_VERSION, `config version "${conf.cniVersion}" does not allow CHECK`);
  }
  const prev = conf.prevResult;
  if (!prev) throw new CniError(CNI_E.INVALID_CONFIG, 'required prevResult missing');
  if (conf.ipam?.type) execIpam(conf.ipam.type, env.cniPath, conf.raw, conf.cniVersion, ipamEnv('CHECK', env));
  const fail = (msg: string): CniError => new CniError(CNI_E.INTERNAL, msg);
  const idx = (prev.interfaces ?? []).findIndex((i) => i.name === env.ifname && i.sandbox === env.netns);
  const itf = prev.interfaces?.[idx];
  if (!itf) throw fail(`prevResult has no interface "${env.ifname}" in sandbox "${env.netns}"`);
  if (!netnsPathExists(env.netns)) throw new CniError(CNI_E.UNKNOWN_CONTAINER, `failed to open netns "${env.netns}"`);
  const host = hostNetns();
  const masterNs = conf.linkInContainer ? nameOfNetnsPath(env.netns) : host;
  if (conf.linkInContainer && masterNs === null) throw fail(`linkInContainer: ${env.netns} has no name under ${NETNS_RUN_DIR}`);
  const masterName = conf.master || resolveMasterName(conf, masterNs);
  enterInitNetns();
  const master = getLink(masterName, masterNs);
  if (!master) throw fail(`master "${masterName}" not found`);
  const link = nsLink(env.netns, env.ifname);
  if (!link) throw fail(`container interface ${env.ifname} not found in ${env.netns}`);
  const alias = parseAlias(link.ifalias);
  const port = alias ? readPort(alias.portId) : null;
  const s = alias ? port?.slaves.find((x) => x.peerName === alias.peerName) : undefined;
  if (!alias || !port || !s || (link.link_index !== undefined && link.link_index !== s.peerIfindex)) {
    throw fail(`${env.ifname} in ${env.netns} is not an ipvlan-bpf slave`);
  }
  const peer = getLink(s.peerName, port.master.netns);
  if (!peer || peer.ifindex !== s.peerIfindex) throw fail(`the host side of ${env.ifname} (${s.peerName}) is gone`);
  if (port.master.ifindex !== master.ifindex) throw fail(`${env.ifname} is a slave of ${port.master.name}, not of ${masterName}`);
  if (port.mode !== conf.mode) throw fail(`${env.ifname} is in mode ${port.mode}, the config asks for ${conf.mode}`);
  if (port.flag !== conf.flag) throw fail(`${env.ifname} has flag ${port.flag}, the config asks for ${conf.flag}`);
  if (itf.mac && link.address && itf.mac.toLowerCase() !== link.address.toLowerCase()) {
    throw fail(`${env.ifname} has MAC ${link.address}, prevResult says ${itf.mac}`);
  }
  if (link.address && master.address && link.address.toLowerCase() !== master.address.toLowerCase()) {
    throw fail(`${env.ifname} has MAC ${link.address}, its master ${masterName} has ${master.address}`);
  }
  // addresses: on the interface, and owned by this slave in the datapath
  const addrs = listAddrs({ file: env.netns }).find((l) => l.ifname === env.ifname)?.addr_info ?? [];
  for (const ipc of prev.ips ?? []) {
    if (ipc.interface !== undefined && ipc.interface !== idx) continue;
    const c = parseCidr(ipc.address);
    if (!c) continue;
    if (!addrs.some((a) => sameAddr(a.local, c.addr) && a.prefixlen === c.prefixlen)) {
      throw fail(`${env.ifname} lacks address ${ipc.address}`);
    }
    const owner = addrOwner(port.portId, c);
    if (owner !== s.peerIfindex) throw fail(`address ${c.addr} is not delivered to ${env.ifname} (datapath owner ${owner ?? 'none'})`);
  }
  // routes: as libcni's ValidateExpectedRoute, destination and gateway
  for (const rt of prev.routes ?? []) {
    const c = parseCidr(rt.dst);
    if (!c) continue;
    const want = addrBytes(c.family, c.addr);
    const same = (text: string | null, b: Buffer): boolean => text !== null && addrBytes(c.family, text).equals(b);
    const hit = rtnlRoutes({ file: env.netns }, c.family, rt.table ?? RT_TABLE_MAIN).some(
      (r) => r.dstLen === c.prefixlen && (c.prefixlen === 0 || same(r.dst, want)) && (!rt.gw || same(r.gateway, addrBytes(c.family, rt.gw))),
    );
    if (!hit) throw fail(`route to ${rt.dst}${rt.gw ? ` via ${rt.gw}` : ''} not found in ${env.netns}`);
  }
  log(`CHECK ${env.containerId}/${env.ifname}: ok`);
}

// ---------------------------------------------------------------- GC

export function cmdGc(conf: NetConf, cniPath: string, log: Log): void {
  if (compareVersions(conf.cniVersion, '1.1.0') < 0) {
    throw new CniError(CNI_E.INCOMPATIBLE_VERSION, `config version "${conf.cniVersion}" does not allow GC`);
  }
  const valid = conf.validAttachments;
  if (valid === null) throw new CniError(CNI_E.INVALID_CONFIG, '"cni.dev/valid-attachments" is missing');
  const keep = new Set(valid.map((a) => `${a.containerID}@${a.ifname}`));
  enterInitNetns();
  const errors: string[] = [];
  for (const rec of listRecords(conf.name)) {
    if (keep.has(`${rec.containerId}@${rec.ifname}`)) continue;
    log(`GC: removing stale attachment ${rec.containerId}/${rec.ifname} (${rec.ips.join(' ')})`);
    try {
      // its addresses are released with the config they were allocated with
      let stored: NetConf | null = null;
      try {
        stored = JSON.parse(rec.config) as NetConf;
      } catch (e) {
        // a record written by hand: its addresses cannot be released through IPAM
        if (!(e instanceof SyntaxError)) throw e;
        stored = null;
      }
      const ipam = (stored as unknown as { ipam?: { type?: unknown } } | null)?.ipam;
      if (ipam && typeof ipam.type === 'string' && ipam.type !== '') {
        const version = (stored as unknown as { cniVersion?: unknown }).cniVersion;
        execIpam(ipam.type, cniPath, rec.config, typeof version === 'string' ? version : conf.cniVersion, {
          command: 'DEL',
          containerId: rec.containerId,
          ifname: rec.ifname,
          netns: rec.netns,
        });
      }
      teardownLink(rec.netns, rec.ifname, rec, log);
      removeRecord(conf.name, rec.containerId, rec.ifname);
    } catch (e) {
      errors.push(`${rec.containerId}/${rec.ifname}: ${errorLine(e)}`);
    }
  }
  // IPAM plugins that know GC clean up what we never recorded (spec: delegate GC)
  if (conf.ipam?.type) {
    try {
      if (ipamKnows11(conf.ipam.type, cniPath)) execIpam(conf.ipam.type, cniPath, conf.raw, conf.cniVersion, { command: 'GC' });
    } catch (e) {
      errors.push(`IPAM GC: ${errorLine(e)}`);
    }
  }
  if (errors.length > 0) throw new CniError(CNI_E.INTERNAL, `GC failed for ${errors.length} item(s)`, errors.join('; '));
}

// ---------------------------------------------------------------- STATUS

function agentRunning(): boolean {
  try {
    const pid = Number(readFileSync(`${stateDir()}/agent.pid`, 'utf8').trim());
    if (!pid) return false;
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // no pid file, or no such process
    if (isSysError(e, 'ENOENT', 'ESRCH')) return false;
    throw e;
  }
}

export function cmdStatus(conf: NetConf, cniPath: string, log: Log): void {
  if (compareVersions(conf.cniVersion, '1.1.0') < 0) {
    throw new CniError(CNI_E.INCOMPATIBLE_VERSION, `config version "${conf.cniVersion}" does not allow STATUS`);
  }
  const unavailable = (msg: string): CniError => new CniError(CNI_E.NOT_AVAILABLE, msg);
  // the datapath: the objects ADD loads and a bpffs to pin them in
  for (const o of ['master_ingress.bpf.o', 'slave_egress.bpf.o']) {
    if (!existsSync(`${repoRoot()}/bpf/${o}`)) throw unavailable(`the datapath is not built: bpf/${o} is missing (npm run build)`);
  }
  try {
    bpffsRoot();
  } catch (e) {
    throw unavailable(errorLine(e));
  }
  // the master must exist where ADD would look for it (not knowable for linkInContainer)
  if (!conf.linkInContainer) {
    const host = hostNetns();
    let name: string;
    try {
      name = resolveMasterName(conf, host);
    } catch (e) {
      throw unavailable(errorLine(e));
    }
    if (!getLink(name, host)) throw unavailable(`master "${name}" does not exist`);
  }
  if (conf.ipam?.type) {
    try {
      findPlugin(conf.ipam.type, cniPath);
      if (ipamKnows11(conf.ipam.type, cniPath)) execIpam(conf.ipam.type, cniPath, conf.raw, conf.cniVersion, { command: 'STATUS' });
    } catch (e) {
      if (e instanceof CniError && e.code >= 50 && e.code <= 51) throw e;
      throw unavailable(`IPAM: ${errorLine(e)}`);
    }
  }
  // the agent is not needed for ADD (the plugin learns the IPAM addresses itself)
  if (!agentRunning()) log('agent not running: addresses added inside containers after ADD are not learned');
}
