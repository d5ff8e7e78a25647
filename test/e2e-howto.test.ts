// SPDX-License-Identifier: GPL-2.0-only
/*
 * The kernel's IPVLAN HOWTO example (../shared/seed/ipvlan-howto.txt §6),
 * verbatim, with `ipvlan-bpf link add ... type ipvlan` in place of
 * `ip link add ... type ipvlan`, checked with real packets against the
 * conformance scenarios of the semantics document (§9.1, §9.2, §9.5).
 *
 * Shape: namespace "host" holds the master eth0m (a veth, MAC
 * 02:00:00:00:00:02, 198.18.0.2 / 2001:db8::2); its peer sits in a bridge in
 * namespace "wire", the external router (198.18.0.1 / 2001:db8::1). Slaves
 * ipvl0/ipvl1 go to ns0/ns1. The agent runs throughout, as it would in use.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  TestEnv,
  buildWire,
  configureSlave,
  ip,
  linkOf,
  addrsOf,
  modeOf,
  ping,
  slaveLinkLocal,
  waitUntil,
  type Wire,
} from './lib/topo.js';

const env = new TestEnv('howto', 'ivbh');
let w: Wire;
let ns0: string;
let ns1: string;

/** waits until the agent has learned every address in WANT for slave IFNAME */
async function learnedAll(ifname: string, want: string[]): Promise<number> {
  const { ms } = await waitUntil(`${ifname} to learn ${want.join(', ')}`, () => {
    const got = env.learned(ifname);
    return want.every((a) => got.includes(a));
  });
  return ms;
}

beforeAll(async () => {
  w = buildWire(env);
  ns0 = env.netns('ns0');
  ns1 = env.netns('ns1');
  await env.startAgent();
});

afterAll(async () => {
  await env.cleanup();
});

describe('HOWTO example, l2 bridge', () => {
  it('creates ipvl0 and ipvl1 on eth0m and moves them to ns0 and ns1', () => {
    env.cliOk('-n', w.host, 'link', 'add', 'link', 'eth0m', 'ipvl0', 'type', 'ipvlan', 'mode', 'l2');
    env.cliOk('-n', w.host, 'link', 'add', 'link', 'eth0m', 'ipvl1', 'type', 'ipvlan', 'mode', 'l2');
    ip(w.host, 'link', 'set', 'dev', 'ipvl0', 'netns', ns0);
    ip(w.host, 'link', 'set', 'dev', 'ipvl1', 'netns', ns1);
    configureSlave(ns0, 'ipvl0', '198.18.0.10/24', '2001:db8::10/64', { gw4: w.routerV4, gw6: w.routerV6 });
    configureSlave(ns1, 'ipvl1', '198.18.0.11/24', '2001:db8::11/64', { gw4: w.routerV4, gw6: w.routerV6 });
    expect(linkOf(ns0, 'ipvl0')).not.toBeNull();
    expect(linkOf(ns1, 'ipvl1')).not.toBeNull();
    // the slaves have left the master's namespace: only the host-side peers remain there
    expect(linkOf(w.host, 'ipvl0')).toBeNull();
  });

  it('reports both slaves as ipvlan, mode l2 bridge, on eth0m, where they live', async () => {
    await learnedAll('ipvl0', ['198.18.0.10', '2001:db8::10']);
    await learnedAll('ipvl1', ['198.18.0.11', '2001:db8::11']);
    const show = env.show();
    expect(show.map((s) => s.ifname).sort()).toEqual(['ipvl0', 'ipvl1']);
    for (const s of show) {
      expect(s.link).toBe('eth0m');
      expect(s.linkinfo.info_kind).toBe('ipvlan');
      expect(s.linkinfo.info_data).toEqual({ mode: 'l2', bridge: true });
    }
    expect(show.find((s) => s.ifname === 'ipvl0')?.ipvlan_bpf.netns).toBe(ns0);
    expect(show.find((s) => s.ifname === 'ipvl1')?.ipvlan_bpf.netns).toBe(ns1);
  });

  it("gives the slaves the master's MAC and no ARP suppression in l2", () => {
    const master = linkOf(w.host, 'eth0m');
    for (const [ns, dev] of [[ns0, 'ipvl0'], [ns1, 'ipvl1']] as const) {
      const l = linkOf(ns, dev);
      expect(l?.address).toBe(master?.address);
      expect(l?.flags).not.toContain('NOARP');
    }
  });

  it('ns0 <-> ns1 over IPv4 and IPv6', () => {
    expect(ping(ns0, '198.18.0.11')).toBe(true);
    expect(ping(ns1, '198.18.0.10')).toBe(true);
    expect(ping(ns0, '2001:db8::11')).toBe(true);
    expect(ping(ns1, '2001:db8::10')).toBe(true);
  });

  it('ns0 -> router and router -> ns0 over IPv4 and IPv6', () => {
    expect(ping(ns0, w.routerV4)).toBe(true);
    expect(ping(ns0, w.routerV6)).toBe(true);
    expect(ping(w.wire, '198.18.0.10')).toBe(true);
    expect(ping(w.wire, '2001:db8::10')).toBe(true);
    expect(ping(w.wire, '198.18.0.11')).toBe(true);
    expect(ping(w.wire, '2001:db8::11')).toBe(true);
  });

  it("isolates slave and master in l2: ns0 <-> master's own address fails both ways", () => {
    // the kernel sends the slave's traffic for the master's address to the wire only (§3.4, §9.2 #27)
    expect(ping(ns0, w.hostV4)).toBe(false);
    expect(ping(ns0, w.hostV6)).toBe(false);
    expect(ping(w.host, '198.18.0.10')).toBe(false);
    expect(ping(w.host, '2001:db8::10')).toBe(false);
    // while the master itself still reaches the router: its own stack is untouched
    expect(ping(w.host, w.routerV4)).toBe(true);
  });

  it('gives each slave the dev_id link-local (fe80::200:0:100:2 for dev_id 1) and ns0 -> ns1 link-local works', async () => {
    const show = env.show();
    const s0 = show.find((s) => s.ifname === 'ipvl0')!;
    const s1 = show.find((s) => s.ifname === 'ipvl1')!;
    expect(s0.ipvlan_bpf.dev_id).not.toBe(s1.ipvlan_bpf.dev_id);
    const ll0 = slaveLinkLocal(w.masterMac, s0.ipvlan_bpf.dev_id);
    const ll1 = slaveLinkLocal(w.masterMac, s1.ipvlan_bpf.dev_id);
    if (s0.ipvlan_bpf.dev_id === 1) expect(ll0).toBe('fe80::200:0:100:2');
    // the agent swaps the veth's EUI-64 (the master's own) for the dev_id one once the slave is up
    await waitUntil('ipvl0 link-local', () => addrsOf(ns0, 'ipvl0').filter((a) => a.startsWith('fe80:')).join() === ll0);
    await waitUntil('ipvl1 link-local', () => addrsOf(ns1, 'ipvl1').filter((a) => a.startsWith('fe80:')).join() === ll1);
    await learnedAll('ipvl0', [ll0]);
    await learnedAll('ipvl1', [ll1]);
    expect(ll0).not.toBe(ll1);
    expect(ping(ns0, ll1, 'ipvl0')).toBe(true);
    expect(ping(ns1, ll0, 'ipvl1')).toBe(true);
  });

  it('the text `link show` names mode l2 bridge too', () => {
    const out = env.cliOk('-n', ns0, 'link', 'show', 'dev', 'ipvl0');
    expect(out).toMatch(/mode l2 bridge/);
  });
});

describe('the same topology in l3', () => {
  let ns2: string;
  let ns3: string;

  beforeAll(() => {
    // fresh slaves in their own subnet, as the l3 conformance set (§9 "L3 addressing") does
    env.cliOk('-n', ns0, 'link', 'del', 'ipvl0');
    env.cliOk('-n', ns1, 'link', 'del', 'ipvl1');
    ns2 = env.netns('ns2');
    ns3 = env.netns('ns3');
    env.cliOk('-n', w.host, 'link', 'add', 'link', 'eth0m', 'ipvl2', 'type', 'ipvlan', 'mode', 'l3');
    env.cliOk('-n', w.host, 'link', 'add', 'link', 'eth0m', 'ipvl3', 'type', 'ipvlan', 'mode', 'l3');
    ip(w.host, 'link', 'set', 'dev', 'ipvl2', 'netns', ns2);
    ip(w.host, 'link', 'set', 'dev', 'ipvl3', 'netns', ns3);
    configureSlave(ns2, 'ipvl2', '198.18.1.10/24', '2001:db8:1::10/64', 'dev');
    configureSlave(ns3, 'ipvl3', '198.18.1.11/24', '2001:db8:1::11/64', 'dev');
  });

  it('reports l3 bridge and sets NOARP on the slaves', async () => {
    await learnedAll('ipvl2', ['198.18.1.10', '2001:db8:1::10']);
    await learnedAll('ipvl3', ['198.18.1.11', '2001:db8:1::11']);
    const show = env.show();
    expect(show.map((s) => s.ifname).sort()).toEqual(['ipvl2', 'ipvl3']);
    for (const s of show) expect(modeOf(s)).toBe('l3 bridge');
    expect(linkOf(ns2, 'ipvl2')?.flags).toContain('NOARP');
    expect(linkOf(ns3, 'ipvl3')?.flags).toContain('NOARP');
  });

  it('ns2 <-> ns3 over IPv4 and IPv6', () => {
    expect(ping(ns2, '198.18.1.11')).toBe(true);
    expect(ping(ns3, '198.18.1.10')).toBe(true);
    expect(ping(ns2, '2001:db8:1::11')).toBe(true);
    expect(ping(ns3, '2001:db8:1::10')).toBe(true);
  });

  it('router -> ns2 only once the router routes the slaves subnet via the master', () => {
    expect(ping(w.wire, '198.18.1.10')).toBe(false);
    ip(w.wire, 'route', 'add', '198.18.1.0/24', 'via', w.hostV4);
    ip(w.wire, '-6', 'route', 'add', '2001:db8:1::/64', 'via', w.hostV6);
    expect(ping(w.wire, '198.18.1.10')).toBe(true);
    expect(ping(w.wire, '2001:db8:1::10')).toBe(true);
    // and the slave reaches the router through the master's routing
    expect(ping(ns2, w.routerV4)).toBe(true);
    expect(ping(ns2, w.routerV6)).toBe(true);
  });

  it('switching the port back to l2 clears NOARP on every slave', () => {
    env.cliOk('-n', ns2, 'link', 'set', 'dev', 'ipvl2', 'type', 'ipvlan', 'mode', 'l2');
    expect(linkOf(ns2, 'ipvl2')?.flags).not.toContain('NOARP');
    expect(linkOf(ns3, 'ipvl3')?.flags).not.toContain('NOARP');
    for (const s of env.show()) expect(modeOf(s)).toBe('l2 bridge');
  });
});
