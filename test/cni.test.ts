// SPDX-License-Identifier: GPL-2.0-only
/*
 * ipvlan-bpf-cni driven as a runtime drives it (issue 7): CNI_* variables,
 * namespace paths, config on stdin, Debian's real host-local IPAM, real
 * packets. No agent runs: the plugin itself puts the IPAM addresses into the
 * datapath, so traffic must work right after ADD.
 *
 * Topology (test/lib/topo.ts buildWire): "host" ns with the master eth0m
 * (the runtime's namespace: the plugin runs there), "wire" ns as the
 * external router (198.18.0.1, br0). Containers are namespaces given to the
 * plugin as /var/run/netns/NAME (containerd's and Podman's form) or as
 * /proc/PID/ns/net of a process in an unnamed namespace.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { TestEnv, buildWire, ip, run, type Wire } from './lib/topo.js';
import { CniRuntime, ensurePackage, hostLocalLeases, reaches, pingFrom, DEBIAN_CNI_DIR } from './lib/cni-runtime.js';

const env = new TestEnv('cni', 'ivbc');
const NET = `ivbc${process.pid}`;
const DATA_DIR = `/run/ivb-test-cni-${process.pid}-ipam`;
let w: Wire;
let rt: CniRuntime;
const sleepers: ChildProcess[] = [];

/** A container namespace, as a path the runtime would pass. */
function container(name: string): string {
  return `/var/run/netns/${env.netns(name)}`;
}

/** A container in an unnamed namespace (a process's), passed as /proc/PID/ns/net. */
async function unnamedContainer(): Promise<string> {
  const p = spawn('unshare', ['--net', 'sleep', '600'], { stdio: 'ignore' });
  sleepers.push(p);
  const path = `/proc/${p.pid}/ns/net`;
  // wait until unshare has exec'd sleep in its new namespace
  for (let i = 0; i < 200; i++) {
    const own = run('readlink', [path]).stdout.trim();
    const init = run('readlink', ['/proc/self/ns/net']).stdout.trim();
    if (own && own !== init && run('cat', [`/proc/${p.pid}/comm`]).stdout.trim() === 'sleep') break;
    await new Promise((r) => setTimeout(r, 10));
  }
  run('nsenter', [`--net=${path}`, 'ip', 'link', 'set', 'lo', 'up']);
  return path;
}

type Conf = Record<string, unknown>;

function conf(extra: Conf = {}, subnet = '198.18.0.0/24', gw = '198.18.0.1', cniVersion = '1.0.0'): Conf {
  const base = subnet.replace(/\.0\/24$/, '');
  return {
    cniVersion,
    name: NET,
    type: 'ipvlan-bpf-cni',
    master: 'eth0m',
    ipam: {
      type: 'host-local',
      dataDir: DATA_DIR,
      ranges: [[{ subnet, rangeStart: `${base}.100`, rangeEnd: `${base}.199`, gateway: gw }]],
      routes: [{ dst: '0.0.0.0/0' }],
    },
    ...extra,
  };
}

interface AddResult {
  cniVersion: string;
  interfaces: Array<{ name: string; mac: string; sandbox: string; mtu?: number }>;
  ips: Array<{ address: string; gateway?: string; interface?: number }>;
  routes: Array<{ dst: string; gw?: string }>;
}

/** attachments a test made and has not deleted: afterEach deletes them, so a failure does not spill into the next test */
const live = new Map<string, { c: Conf; netns: string }>();
const addTimes: number[] = [];

function add(c: Conf, id: string, netns: string, ifname = 'eth0'): AddResult {
  const r = rt.ok({ command: 'ADD', containerId: id, netns, ifname, config: c });
  live.set(id, { c, netns });
  addTimes.push(r.ms);
  return r.json as unknown as AddResult;
}

function del(c: Conf, id: string, netns: string | undefined, ifname = 'eth0'): void {
  rt.ok({ command: 'DEL', containerId: id, ifname, config: c, ...(netns !== undefined ? { netns } : {}) });
  live.delete(id);
}

afterEach(() => {
  for (const [id, a] of live) rt.call({ command: 'DEL', containerId: id, ifname: 'eth0', netns: a.netns, config: a.c });
  live.clear();
});

const addrOf = (r: AddResult): string => r.ips[0]!.address.split('/')[0]!;

function sysctlIn(nsPath: string, key: string): string {
  return run('nsenter', [`--net=${nsPath}`, 'sysctl', '-n', key]).stdout.trim();
}

/** Nothing of ours left: no slave, no port, no address lease, no attachment record. */
function expectClean(): void {
  expect(env.show()).toEqual([]);
  expect(env.pinFiles().filter((f) => f.startsWith('ports/'))).toEqual([]);
  expect(env.stateFiles()).toEqual([]);
  expect(hostLocalLeases(DATA_DIR, NET)).toEqual([]);
}

beforeAll(() => {
  ensurePackage('containernetworking-plugins', `${DEBIAN_CNI_DIR}/host-local`);
  env.onCleanup(() => rmSync(DATA_DIR, { recursive: true, force: true }));
  env.onCleanup(() => {
    for (const s of sleepers) s.kill('SIGKILL');
  });
  w = buildWire(env);
  rt = new CniRuntime(env, w.host);
});

afterAll(async () => {
  if (addTimes.length) {
    const sorted = [...addTimes].sort((x, y) => x - y);
    console.log(`ADD (process start to result, ${sorted.length} calls): median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} ms, max ${sorted[sorted.length - 1]!.toFixed(0)} ms`);
  }
  await env.cleanup();
});

describe('ipvlan-bpf-cni', () => {
  it('VERSION answers at once with the versions it speaks', () => {
    const r = rt.ok({ command: 'VERSION', config: { cniVersion: '1.1.0' } });
    expect(r.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    console.log(`VERSION round trip (node start-up + nsenter): ${r.ms.toFixed(0)} ms`);
  });

  it('l2 bridge: two containers reach each other and the router; CHECK passes; DEL twice succeeds', async () => {
    const c = conf({ mode: 'l2' });
    const a = container('a');
    const b = await unnamedContainer();
    const ra = add(c, 'ctr-a', a);
    const rb = add(c, 'ctr-b', b);
    // the result as the spec has it: our interface in the sandbox, its address from host-local
    expect(ra.cniVersion).toBe('1.0.0');
    expect(ra.interfaces).toEqual([{ name: 'eth0', mac: w.masterMac, sandbox: a }]);
    expect(ra.ips[0]).toMatchObject({ gateway: '198.18.0.1', interface: 0 });
    expect(ra.ips[0]!.address).toMatch(/^198\.18\.0\.1\d\d\/24$/);
    expect(ra.routes).toEqual([{ dst: '0.0.0.0/0' }]);
    expect(hostLocalLeases(DATA_DIR, NET).sort()).toEqual([addrOf(ra), addrOf(rb)].sort());
    // inside: the renamed link, up, the master's MAC, the notify sysctls, the default route
    const link = JSON.parse(run('nsenter', [`--net=${a}`, 'ip', '-j', 'link', 'show', 'dev', 'eth0']).stdout)[0] as { flags: string[]; address: string };
    expect(link.flags).toContain('UP');
    expect(link.address).toBe(w.masterMac);
    expect(sysctlIn(a, 'net.ipv4.conf.eth0.arp_notify')).toBe('1');
    expect(sysctlIn(a, 'net.ipv6.conf.eth0.ndisc_notify')).toBe('1');
    expect(run('nsenter', [`--net=${a}`, 'ip', 'route', 'show', 'default']).stdout).toContain('via 198.18.0.1 dev eth0');
    expect(env.slave('eth0')?.linkinfo.info_data.mode).toBe('l2');

    expect(reaches(a, addrOf(rb))).toBe(true);
    expect(reaches(b, addrOf(ra))).toBe(true);
    expect(reaches(a, w.routerV4)).toBe(true);
    expect(reaches(b, w.routerV4)).toBe(true);

    // CHECK with the ADD's result as prevResult
    rt.ok({ command: 'CHECK', containerId: 'ctr-a', netns: a, ifname: 'eth0', config: { ...c, prevResult: ra } });

    // ours, not the reference's: a network asking another mode of a busy master is refused, not applied to all
    const c3 = conf({ mode: 'l3' });
    const n = container('n');
    const refused = rt.call({ command: 'ADD', containerId: 'ctr-n', netns: n, ifname: 'eth0', config: c3 });
    expect(refused.status).not.toBe(0);
    expect(refused.json).toMatchObject({ cniVersion: '1.0.0', code: 7 });
    expect(String(refused.json?.msg)).toMatch(/in use in mode l2 bridge/);
    expect(run('nsenter', [`--net=${n}`, 'ip', 'link', 'show', 'eth0']).status).not.toBe(0);
    expect(hostLocalLeases(DATA_DIR, NET)).toHaveLength(2);
    expect(reaches(a, addrOf(rb))).toBe(true);

    del(c, 'ctr-a', a);
    del(c, 'ctr-a', a);
    expect(run('nsenter', [`--net=${a}`, 'ip', 'link', 'show', 'eth0']).status).not.toBe(0);
    expect(pingFrom(b, addrOf(ra))).toBe(false);
    // DEL without a namespace (the runtime lost it) is fine too
    del(c, 'ctr-b', undefined);
    del(c, 'ctr-b', b);
    expect(run('nsenter', [`--net=${b}`, 'ip', 'link', 'show', 'eth0']).status).not.toBe(0);
    expectClean();
  });

  it('l2 private: each container reaches the router, not the other', () => {
    const c = conf({ mode: 'l2', flag: 'private' });
    const a = container('pa');
    const b = container('pb');
    const ra = add(c, 'ctr-pa', a);
    const rb = add(c, 'ctr-pb', b);
    expect(env.slave('eth0')?.linkinfo.info_data.private).toBe(true);
    expect(reaches(a, w.routerV4)).toBe(true);
    expect(reaches(b, w.routerV4)).toBe(true);
    expect(pingFrom(a, addrOf(rb))).toBe(false);
    expect(pingFrom(b, addrOf(ra))).toBe(false);
    rt.ok({ command: 'CHECK', containerId: 'ctr-pa', netns: a, ifname: 'eth0', config: { ...c, prevResult: ra } });
    // CHECK compares the flag too
    const wrong = rt.call({ command: 'CHECK', containerId: 'ctr-pa', netns: a, ifname: 'eth0', config: { ...conf({ mode: 'l2' }), prevResult: ra } });
    expect(wrong.status).not.toBe(0);
    expect(String(wrong.json?.msg)).toMatch(/flag private/);
    del(c, 'ctr-pa', a);
    del(c, 'ctr-pb', b);
    expectClean();
  });

  it('l3: containers on their own subnet reach each other and the router, which routes it via the master host', () => {
    const c = conf({ mode: 'l3' }, '198.19.1.0/24', '198.19.1.1');
    ip(w.wire, 'route', 'add', '198.19.1.0/24', 'via', w.hostV4);
    const a = container('la');
    const b = container('lb');
    const ra = add(c, 'ctr-la', a);
    const rb = add(c, 'ctr-lb', b);
    expect(addrOf(ra)).toMatch(/^198\.19\.1\./);
    expect(env.slave('eth0')?.linkinfo.info_data.mode).toBe('l3');
    expect(reaches(a, addrOf(rb))).toBe(true);
    expect(reaches(b, addrOf(ra))).toBe(true);
    expect(reaches(a, w.routerV4)).toBe(true);
    expect(reaches(b, w.routerV4)).toBe(true);
    rt.ok({ command: 'CHECK', containerId: 'ctr-lb', netns: b, ifname: 'eth0', config: { ...c, prevResult: rb } });
    del(c, 'ctr-la', a);
    del(c, 'ctr-lb', b);
    ip(w.wire, 'route', 'del', '198.19.1.0/24');
    expectClean();
  });

  it('CHECK fails once the interface was removed by hand; DEL still cleans up', () => {
    const c = conf();
    const a = container('ca');
    const ra = add(c, 'ctr-ca', a);
    rt.ok({ command: 'CHECK', containerId: 'ctr-ca', netns: a, ifname: 'eth0', config: { ...c, prevResult: ra } });
    run('nsenter', [`--net=${a}`, 'ip', 'link', 'del', 'eth0']);
    const r = rt.call({ command: 'CHECK', containerId: 'ctr-ca', netns: a, ifname: 'eth0', config: { ...c, prevResult: ra } });
    expect(r.status).not.toBe(0);
    expect(r.json).toMatchObject({ cniVersion: '1.0.0' });
    expect(typeof r.json?.code).toBe('number');
    expect(String(r.json?.msg)).toMatch(/eth0 not found/);
    // CHECK without prevResult is a config error
    const np = rt.call({ command: 'CHECK', containerId: 'ctr-ca', netns: a, ifname: 'eth0', config: c });
    expect(np.json).toMatchObject({ code: 7, msg: 'required prevResult missing' });
    del(c, 'ctr-ca', a);
    del(c, 'ctr-ca', a);
    expectClean();
  });

  it('CNI 1.1: STATUS, and GC removes the attachment missing from cni.dev/valid-attachments', () => {
    const c = conf({}, '198.18.0.0/24', '198.18.0.1', '1.1.0');
    expect(rt.call({ command: 'STATUS', config: c }).status).toBe(0);
    const a = container('ga');
    const b = container('gb');
    // host-local 1.1.1 speaks CNI 1.0.0 at most: the plugin negotiates with it
    const ra = add(c, 'ctr-ga', a);
    const rb = add(c, 'ctr-gb', b);
    expect(ra.cniVersion).toBe('1.1.0');
    expect(ra.interfaces[0]?.mtu).toBe(1500);
    expect(reaches(a, addrOf(rb))).toBe(true);
    const gc = rt.call({ command: 'GC', config: { ...c, 'cni.dev/valid-attachments': [{ containerID: 'ctr-ga', ifname: 'eth0' }] } });
    expect(gc.status, gc.stdout + gc.stderr).toBe(0);
    expect(run('nsenter', [`--net=${b}`, 'ip', 'link', 'show', 'eth0']).status).not.toBe(0);
    expect(hostLocalLeases(DATA_DIR, NET)).toEqual([addrOf(ra)]);
    expect(env.show().map((s) => s.ifname)).toEqual(['eth0']);
    expect(reaches(a, w.routerV4)).toBe(true);
    // GC below 1.1 is refused; DEL of the collected attachment is still fine
    expect(rt.call({ command: 'GC', config: { ...conf(), 'cni.dev/valid-attachments': [] } }).json).toMatchObject({ code: 1 });
    del(c, 'ctr-gb', b);
    del(c, 'ctr-ga', a);
    expectClean();
  });

  it('chained without IPAM: the previous result\'s addresses and routes, CNI 1.1 route fields included, as ip shows them', () => {
    const a = container('ch');
    const { ipam: _ipam, ...noIpam } = conf({ mode: 'l2' }, '198.18.0.0/24', '198.18.0.1', '1.1.0');
    const prevResult = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'eth0m' }],
      ips: [
        { address: '198.18.0.150/24', gateway: '198.18.0.1' },
        { address: '2001:db8::150/64', gateway: '2001:db8::1' },
      ],
      routes: [
        { dst: '0.0.0.0/0' },
        { dst: '198.19.5.0/24', gw: '198.18.0.9', priority: 33, mtu: 1400, advmss: 1300 },
        { dst: '198.19.6.0/24', table: 100, scope: 0 },
        { dst: '2001:db8:5::/48', priority: 7 },
      ],
    };
    const r = add({ ...noIpam, prevResult }, 'ctr-ch', a);
    expect(r.ips.map((i) => i.address)).toEqual(['198.18.0.150/24', '2001:db8::150/64']);
    const inside = (...args: string[]): string => run('nsenter', [`--net=${a}`, 'ip', ...args]).stdout;
    expect(inside('-4', 'route', 'show', 'default')).toContain('default via 198.18.0.1 dev eth0');
    const v4 = JSON.parse(inside('-j', '-4', 'route', 'show', '198.19.5.0/24'))[0] as Record<string, unknown>;
    expect(v4).toMatchObject({ gateway: '198.18.0.9', dev: 'eth0', metric: 33, metrics: [{ mtu: 1400, advmss: 1300 }] });
    expect(inside('-4', 'route', 'show', 'table', '100')).toMatch(/^198\.19\.6\.0\/24 via 198\.18\.0\.1 dev eth0 \n/);
    expect(inside('-6', 'route', 'show', '2001:db8:5::/48')).toMatch(/^2001:db8:5::\/48 via 2001:db8::1 dev eth0 metric 7/);
    expect(inside('-br', 'addr', 'show', 'dev', 'eth0')).toMatch(/198\.18\.0\.150\/24 2001:db8::150\/64 fe80::/);
    expect(reaches(a, w.routerV4)).toBe(true);
    del({ ...noIpam, prevResult }, 'ctr-ch', a);
    expect(env.show()).toEqual([]);
  });

  it('STATUS reports a master that does not exist as "not available" (50)', () => {
    const r = rt.call({ command: 'STATUS', config: conf({ master: 'nosuchdev0' }, '198.18.0.0/24', '198.18.0.1', '1.1.0') });
    expect(r.status).not.toBe(0);
    expect(r.json).toMatchObject({ cniVersion: '1.1.0', code: 50 });
  });

  it('errors come as the spec JSON with its codes (7 invalid config, 6 decode, 4 environment)', () => {
    const a = container('ea');
    const bad = rt.call({ command: 'ADD', containerId: 'ctr-ea', netns: a, ifname: 'eth0', config: conf({ mode: 'l4' }) });
    expect(bad.status).not.toBe(0);
    expect(bad.json).toEqual({ cniVersion: '1.0.0', code: 7, msg: 'unknown ipvlan mode: "l4" (l2, l3 or l3s)' });
    expect(bad.stderr).toMatch(/ipvlan-bpf-cni: error 7/);
    expect(rt.call({ command: 'ADD', containerId: 'ctr-ea', netns: a, ifname: 'eth0', config: conf({ flag: 'loud' }) }).json).toMatchObject({ code: 7 });
    expect(rt.call({ command: 'ADD', containerId: 'ctr-ea', netns: a, ifname: 'eth0', config: conf({ mtu: 9000 }) }).json).toMatchObject({ code: 7 });
    expect(rt.call({ command: 'ADD', containerId: 'ctr-ea', netns: a, ifname: 'eth0', config: conf({ master: 'nosuchdev0' }) }).json).toMatchObject({ code: 7 });
    expect(rt.call({ command: 'ADD', containerId: 'ctr-ea', netns: a, ifname: 'eth0', config: '{"cniVersion": ' }).json).toMatchObject({ code: 6 });
    expect(rt.call({ command: 'ADD', containerId: 'ctr-ea', netns: a, ifname: 'eth0', config: conf({ cniVersion: '9.9.9' }) }).json).toMatchObject({ code: 1 });
    expect(rt.call({ command: 'ADD', containerId: 'ctr-ea', ifname: 'eth0', config: conf() }).json).toMatchObject({ code: 4 });
    expect(rt.call({ command: 'ADD', containerId: 'ctr-ea', netns: a, ifname: 'eth0', config: conf(), env: { CNI_COMMAND: 'FROB' } }).json).toMatchObject({ code: 4 });
    expect(rt.call({ command: 'ADD', containerId: 'ctr ea', netns: a, ifname: 'eth0', config: conf() }).json).toMatchObject({ code: 4 });
    // none of these left anything behind
    expect(run('nsenter', [`--net=${a}`, 'ip', 'link', 'show', 'eth0']).status).not.toBe(0);
    expectClean();
  });

  it('the cni.dev ipvlan example works with only "type" changed (subnet and master made local)', () => {
    // /var/lib/cni/networks/mynet is host-local's default store: removed afterwards if we made it
    const store = ['/var/lib/cni/networks/mynet', '/var/lib/cni/networks', '/var/lib/cni'].filter((d) => !existsSync(d));
    env.onCleanup(() => {
      for (const d of store) rmSync(d, { recursive: true, force: true });
    });
    const doc = `{
  "name": "mynet",
  "type": "ipvlan-bpf-cni",
  "master": "eth0m",
  "ipam": {
    "type": "host-local",
    "subnet": "198.18.5.0/24"
  }
}`;
    ip(w.wire, 'addr', 'add', '198.18.5.1/24', 'dev', 'br0');
    const a = container('da');
    const b = container('db');
    const ra = rt.ok({ command: 'ADD', containerId: 'ctr-da', netns: a, ifname: 'eth0', config: doc }).json as { cniVersion: string; ip4: { ip: string; gateway: string } };
    const rb = rt.ok({ command: 'ADD', containerId: 'ctr-db', netns: b, ifname: 'eth0', config: doc }).json as { ip4: { ip: string } };
    // no cniVersion: 0.1.0, as libcni reads it, and its result format
    expect(ra.cniVersion).toBe('0.1.0');
    expect(ra.ip4.gateway).toBe('198.18.5.1');
    expect(ra.ip4.ip).toMatch(/^198\.18\.5\.\d+\/24$/);
    expect(env.slave('eth0')?.linkinfo.info_data.mode).toBe('l2');
    expect(reaches(a, '198.18.5.1')).toBe(true);
    expect(reaches(a, rb.ip4.ip.split('/')[0]!)).toBe(true);
    rt.ok({ command: 'DEL', containerId: 'ctr-da', netns: a, ifname: 'eth0', config: doc });
    rt.ok({ command: 'DEL', containerId: 'ctr-db', netns: b, ifname: 'eth0', config: doc });
    rt.ok({ command: 'DEL', containerId: 'ctr-db', netns: b, ifname: 'eth0', config: doc });
    expect(hostLocalLeases('/var/lib/cni/networks', 'mynet')).toEqual([]);
    ip(w.wire, 'addr', 'del', '198.18.5.1/24', 'dev', 'br0');
    expectClean();
  });
});
