// SPDX-License-Identifier: GPL-2.0-only
/*
 * Issue 11, part 2: l3s through the master namespace's netfilter, end to
 * end with real nft rules, conntrack and TCP, IPv4 and IPv6. Ingress to a
 * slave passes the master's PREROUTING, FORWARD and POSTROUTING (conntrack
 * entries both ways, Service-style DNAT, MASQUERADE with replies, a
 * `ct state new drop` that spares established flows); slave<->slave stays
 * on redirect_peer (no conntrack entry); TTL / hop limit arrive as sent;
 * the master does not become a transit router; the master's own traffic to
 * a slave keeps the kernel's l3s outcome; l3 <-> l3s at run time with a
 * flow running; what l3s set is gone after the last `link del`.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { TestEnv, configureSlave, ip, nsExec, run, snmp, waitUntil, type Agent } from './lib/topo.js';
import { addSlaves, buildHostTopo, hostState, nftIn, pings, sysctlIn, sysctlOf, type HostTopo } from './lib/hostnet.js';

const env = new TestEnv('l3s', 'ivl');
let t: HostTopo;
let before: Record<string, string>;
let far: string;
let agent: Agent;
const procs: ChildProcess[] = [];

const VIP4 = '198.18.100.1';
const VIP6 = '2001:db8:100::1';

/** a long-running process inside NS, killed at cleanup */
function daemon(ns: string, cmd: string, args: string[]): ChildProcess {
  const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  procs.push(p);
  return p;
}

async function listening(ns: string, port: number): Promise<void> {
  await waitUntil(`${ns} listening on ${port}`, () => nsExec(ns, 'ss', ['-Hltn', `sport = :${port}`]).stdout.includes(`:${port}`), 5_000);
}

/** one TCP exchange from NS: the line the server answers, or '' when the connection failed */
function tcpOnce(ns: string, host: string, port: number): string {
  const target = host.includes(':') ? `TCP6:[${host}]:${port},connect-timeout=1` : `TCP4:${host}:${port},connect-timeout=1`;
  const r = run('ip', ['netns', 'exec', ns, 'socat', '-T', '2', '-', target], { timeoutMs: 5_000 });
  return r.stdout.trim();
}

/** A long-lived echo connection: each line written comes back while the flow works. */
class Flow {
  private readonly lines: string[] = [];
  constructor(private readonly p: ChildProcess) {
    createInterface({ input: p.stdout! }).on('line', (l) => this.lines.push(l));
  }
  async echo(word: string): Promise<boolean> {
    this.p.stdin!.write(`${word}\n`);
    try {
      await waitUntil(`echo of ${word}`, () => this.lines.includes(word), 2_000);
      return true;
    } catch {
      return false;
    }
  }
}

function conntrack(family: 'ipv4' | 'ipv6'): string[] {
  const r = run('ip', ['netns', 'exec', t.w.host, 'conntrack', '-L', '-f', family]);
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}

/** the counter of the rule carrying COMMENT in NS's ruleset */
function counter(ns: string, comment: string): number {
  const line = nftIn(ns, 'list', 'ruleset').split('\n').find((l) => l.includes(`comment "${comment}"`));
  const m = line?.match(/packets (\d+)/);
  if (!m) throw new Error(`no rule "${comment}" in ${ns}`);
  return Number(m[1]);
}

beforeAll(async () => {
  t = buildHostTopo(env);
  // a second link of the host (eth1 -> namespace "far"), to show that the master does not forward transit
  far = env.netns('far');
  ip(t.w.host, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'f0', 'netns', far);
  ip(t.w.host, 'link', 'set', 'eth1', 'up');
  ip(t.w.host, 'addr', 'add', '198.18.8.1/24', 'dev', 'eth1');
  ip(t.w.host, 'addr', 'add', '2001:db8:8::1/64', 'dev', 'eth1', 'nodad');
  ip(far, 'link', 'set', 'f0', 'up');
  ip(far, 'addr', 'add', '198.18.8.2/24', 'dev', 'f0');
  ip(far, 'addr', 'add', '2001:db8:8::2/64', 'dev', 'f0', 'nodad');
  ip(far, 'route', 'add', 'default', 'via', '198.18.8.1');
  ip(far, '-6', 'route', 'add', 'default', 'via', '2001:db8:8::1');
  ip(t.w.wire, 'route', 'add', '198.18.8.0/24', 'via', t.w.hostV4);
  ip(t.w.wire, '-6', 'route', 'add', '2001:db8:8::/64', 'via', t.w.hostV6);
  ip(t.w.wire, 'route', 'add', `${VIP4}/32`, 'via', t.w.hostV4);
  ip(t.w.wire, '-6', 'route', 'add', `${VIP6}/128`, 'via', t.w.hostV6);
  before = hostState(t);
  agent = await env.startAgent();
  await addSlaves(env, t, 'l3s');
  // conntrack runs in a namespace once a rule needs it; this one counts forwarded packets of new flows
  nftIn(t.w.host, 'add table inet obs');
  nftIn(t.w.host, 'add chain inet obs forw { type filter hook forward priority 0; }');
  nftIn(t.w.host, 'add rule inet obs forw ct state new counter comment "fwd-new"');
  // what arrives in ns0, by TTL / hop limit
  nftIn(t.s0.ns, 'add table inet obs');
  nftIn(t.s0.ns, 'add chain inet obs in { type filter hook input priority 0; }');
  nftIn(t.s0.ns, 'add rule inet obs in ip saddr 198.18.0.1 counter comment "v4-from-wire"');
  nftIn(t.s0.ns, 'add rule inet obs in ip saddr 198.18.0.1 ip ttl 64 counter comment "v4-ttl64"');
  nftIn(t.s0.ns, 'add rule inet obs in ip6 saddr 2001:db8::1 counter comment "v6-from-wire"');
  nftIn(t.s0.ns, 'add rule inet obs in ip6 saddr 2001:db8::1 ip6 hoplimit 64 counter comment "v6-hl64"');
});

afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL');
  await env.cleanup();
});

describe('l3s: ingress through the master namespace netfilter', () => {
  it('link show says l3s and the CLI no longer warns', () => {
    const r = env.cli(['-n', t.s1.ns, 'link', 'set', 'dev', t.s1.dev, 'type', 'ipvlan', 'mode', 'l3s']);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(env.show().map((s) => s.linkinfo.info_data.mode)).toEqual(['l3s', 'l3s']);
    expect(sysctlOf(t.w.host, 'net.ipv4.conf.eth0m.forwarding')).toBe('1');
  });

  it('conntrack sees ext->slave and slave->ext, IPv4 and IPv6, and nothing of slave<->slave', () => {
    run('ip', ['netns', 'exec', t.w.host, 'conntrack', '-F']);
    expect(pings(t.w.wire, t.s0.v4, 1)).toBe(1);
    expect(pings(t.w.wire, t.s0.v6, 1)).toBe(1);
    expect(pings(t.s0.ns, t.w.routerV4, 1)).toBe(1);
    expect(pings(t.s0.ns, t.w.routerV6, 1)).toBe(1);
    expect(pings(t.s0.ns, t.s1.v4, 1)).toBe(1);
    expect(pings(t.s0.ns, t.s1.v6, 1)).toBe(1);
    const v4 = conntrack('ipv4');
    const v6 = conntrack('ipv6');
    expect(v4.filter((l) => l.includes('src=198.18.0.1 dst=198.18.0.10 type=8'))).toHaveLength(1);
    expect(v4.filter((l) => l.includes('src=198.18.0.10 dst=198.18.0.1 type=8'))).toHaveLength(1);
    expect(v6.filter((l) => l.includes('src=2001:db8::1 dst=2001:db8::10 type=128'))).toHaveLength(1);
    expect(v6.filter((l) => l.includes('src=2001:db8::10 dst=2001:db8::1 type=128'))).toHaveLength(1);
    expect([...v4, ...v6].filter((l) => /src=(198\.18\.0\.10|2001:db8::10) dst=(198\.18\.0\.11|2001:db8::11) /.test(l))).toEqual([]);
  });

  it('TTL and hop limit arrive as the wire sent them (64)', () => {
    const b = ['v4-from-wire', 'v4-ttl64', 'v6-from-wire', 'v6-hl64'].map((c) => counter(t.s0.ns, c));
    expect(pings(t.w.wire, t.s0.v4, 2)).toBe(2);
    expect(pings(t.w.wire, t.s0.v6, 2)).toBe(2);
    const a = ['v4-from-wire', 'v4-ttl64', 'v6-from-wire', 'v6-hl64'].map((c) => counter(t.s0.ns, c));
    expect(a.map((v, i) => v - b[i]!)).toEqual([2, 2, 2, 2]);
  });

  it('a Service-style DNAT (ext -> VIP:8080 -> slave:80) reaches the slave, TTL intact, replies come from the VIP', async () => {
    nftIn(t.w.host, 'add table inet svc');
    nftIn(t.w.host, 'add chain inet svc pre { type nat hook prerouting priority dstnat; }');
    nftIn(t.w.host, `add rule inet svc pre ip daddr ${VIP4} tcp dport 8080 dnat ip to ${t.s0.v4}:80`);
    nftIn(t.w.host, `add rule inet svc pre ip6 daddr ${VIP6} tcp dport 8080 dnat ip6 to [${t.s0.v6}]:80`);
    daemon(t.s0.ns, 'socat', ['TCP6-LISTEN:80,fork,reuseaddr,ipv6only=0', 'SYSTEM:echo served-by-ns0']);
    await listening(t.s0.ns, 80);
    const b = ['v4-from-wire', 'v4-ttl64', 'v6-from-wire', 'v6-hl64'].map((c) => counter(t.s0.ns, c));
    // TCP itself checks that the answers come from the address it connected to: the VIP
    expect(tcpOnce(t.w.wire, VIP4, 8080)).toBe('served-by-ns0');
    expect(tcpOnce(t.w.wire, VIP6, 8080)).toBe('served-by-ns0');
    const a = ['v4-from-wire', 'v4-ttl64', 'v6-from-wire', 'v6-hl64'].map((c) => counter(t.s0.ns, c));
    const d = a.map((v, i) => v - b[i]!);
    expect(d[0]).toBeGreaterThan(0);
    expect(d[1]).toBe(d[0]);
    expect(d[2]).toBeGreaterThan(0);
    expect(d[3]).toBe(d[2]);
    expect(conntrack('ipv4').some((l) => l.includes(`dst=${VIP4} sport=`) && l.includes(`src=${t.s0.v4} dst=198.18.0.1 sport=80`))).toBe(true);
  });

  it('MASQUERADE of slave egress, with replies, where the wire has no route to the slave', () => {
    ip(t.w.wire, 'route', 'del', `${t.s1.v4}/32`);
    ip(t.w.wire, '-6', 'route', 'del', `${t.s1.v6}/128`);
    expect(pings(t.s1.ns, t.w.routerV4, 1)).toBe(0);
    expect(pings(t.s1.ns, t.w.routerV6, 1)).toBe(0);
    nftIn(t.w.host, 'add table inet masq');
    nftIn(t.w.host, 'add chain inet masq post { type nat hook postrouting priority srcnat; }');
    nftIn(t.w.host, `add rule inet masq post oifname "eth0m" ip saddr ${t.s1.v4} masquerade`);
    nftIn(t.w.host, `add rule inet masq post oifname "eth0m" ip6 saddr ${t.s1.v6} masquerade`);
    expect(pings(t.s1.ns, t.w.routerV4)).toBe(3);
    expect(pings(t.s1.ns, t.w.routerV6)).toBe(3);
    expect(conntrack('ipv4').some((l) => l.includes(`src=${t.s1.v4} dst=198.18.0.1`) && l.includes('dst=198.18.0.2 type=0'))).toBe(true);
    nftIn(t.w.host, 'delete table inet masq');
    ip(t.w.wire, 'route', 'add', `${t.s1.v4}/32`, 'via', t.w.hostV4);
    ip(t.w.wire, '-6', 'route', 'add', `${t.s1.v6}/128`, 'via', t.w.hostV6);
  });

  it('no transit: what arrives on the master for another network is not forwarded; the host itself still answers', () => {
    const reached = (): number[] => [snmp(far, 'Icmp', 'InEchos'), snmp(far, 'Icmp6', 'InEchos')];
    const sendBoth = (): void => {
      pings(t.w.wire, '198.18.8.2', 1);
      pings(t.w.wire, '2001:db8:8::2', 1);
    };
    const b = reached();
    sendBoth();
    expect(reached()).toEqual(b);
    expect(pings(t.w.wire, '198.18.8.1', 1)).toBe(1);
    expect(pings(t.w.wire, '2001:db8:8::1', 1)).toBe(1);
    // the control: without our blackhole rules the master, forwarding for l3s, would pass them on
    const rule = (f: '-4' | '-6'): string => ip(t.w.host, f, 'rule', 'show').split('\n').find((l) => l.includes('iif eth0m blackhole'))!.split(':')[0]!;
    const prefs = { '-4': rule('-4'), '-6': rule('-6') } as const;
    for (const f of ['-4', '-6'] as const) ip(t.w.host, f, 'rule', 'del', 'pref', prefs[f]);
    const c = reached();
    sendBoth();
    const d = reached();
    for (const f of ['-4', '-6'] as const) ip(t.w.host, f, 'rule', 'add', 'pref', prefs[f], 'iif', 'eth0m', 'blackhole');
    expect([d[0]! - c[0]!, d[1]! - c[1]!]).toEqual([1, 1]);
  });

  it("the master's own traffic to a slave keeps the kernel's l3s outcome (not delivered)", () => {
    expect(pings(t.w.host, t.s0.v4, 1)).toBe(0);
    expect(pings(t.w.host, t.s0.v6, 1)).toBe(0);
  });

  it('ct state new drop in PREROUTING blocks new connections, not established ones; l3 is not affected; l3 <-> l3s with the flow running', async () => {
    daemon(t.s0.ns, 'socat', ['TCP6-LISTEN:81,fork,reuseaddr,ipv6only=0', 'EXEC:cat']);
    await listening(t.s0.ns, 81);
    const flows = [t.s0.v4, t.s0.v6].map(
      (a) => new Flow(daemon(t.w.wire, 'socat', ['-', a.includes(':') ? `TCP6:[${a}]:81` : `TCP4:${a}:81`])),
    );
    for (const f of flows) expect(await f.echo('one')).toBe(true);
    nftIn(t.w.host, 'add table inet guard');
    nftIn(t.w.host, 'add chain inet guard pre { type filter hook prerouting priority 0; }');
    nftIn(t.w.host, `add rule inet guard pre ip daddr ${t.s0.v4} tcp dport 81 ct state new counter drop comment "new-drop"`);
    nftIn(t.w.host, `add rule inet guard pre ip6 daddr ${t.s0.v6} tcp dport 81 ct state new counter drop comment "new-drop6"`);
    // a new connection, by socat's exit status
    const connects = (): boolean[] =>
      [t.s0.v4, t.s0.v6].map(
        (a) =>
          run('ip', ['netns', 'exec', t.w.wire, 'socat', '-u', 'OPEN:/dev/null', a.includes(':') ? `TCP6:[${a}]:81,connect-timeout=1` : `TCP4:${a}:81,connect-timeout=1`], { timeoutMs: 5_000 }).status === 0,
      );
    expect(connects()).toEqual([false, false]);
    expect(counter(t.w.host, 'new-drop')).toBeGreaterThan(0);
    for (const f of flows) expect(await f.echo('two')).toBe(true);
    // l3: the rule does not see l3 ingress (redirect_peer), established flows go on
    env.cliOk('-n', t.s0.ns, 'link', 'set', 'dev', t.s0.dev, 'type', 'ipvlan', 'mode', 'l3');
    expect(connects()).toEqual([true, true]);
    for (const f of flows) expect(await f.echo('three')).toBe(true);
    // and back to l3s
    env.cliOk('-n', t.s0.ns, 'link', 'set', 'dev', t.s0.dev, 'type', 'ipvlan', 'mode', 'l3s');
    for (const f of flows) expect(await f.echo('four')).toBe(true);
    expect(connects()).toEqual([false, false]);
    nftIn(t.w.host, 'delete table inet guard');
    expect(connects()).toEqual([true, true]);
  });

  it('after the last link del, forwarding, rules and routes are as before the first link add', () => {
    for (const name of ['obs', 'svc']) nftIn(t.w.host, 'delete', 'table', 'inet', name);
    env.cliOk('-n', t.s0.ns, 'link', 'del', t.s0.dev);
    expect(sysctlOf(t.w.host, 'net.ipv4.conf.eth0m.forwarding')).toBe('1');
    env.cliOk('-n', t.s1.ns, 'link', 'del', t.s1.dev);
    expect(sysctlOf(t.w.host, 'net.ipv4.conf.eth0m.forwarding')).toBe('0');
    expect(hostState(t)).toEqual(before);
  });

  it('gc after a crash: the slave namespace went while no agent ran; gc takes away what l3s set', async () => {
    await agent.stop();
    nftIn(t.w.host, 'add table inet userfw');
    nftIn(t.w.host, 'add chain inet userfw forward { type filter hook forward priority 0; policy drop; }');
    const ns2 = env.netns('ns2');
    env.cliOk('-n', t.w.host, 'link', 'add', 'link', 'eth0m', 'name', 'ipvl2', 'type', 'ipvlan', 'mode', 'l3s');
    ip(t.w.host, 'link', 'set', 'dev', 'ipvl2', 'netns', ns2);
    configureSlave(ns2, 'ipvl2', '198.18.0.12/24', '2001:db8::12/64', 'dev');
    ip(t.w.wire, 'route', 'add', '198.18.0.12/32', 'via', t.w.hostV4);
    env.cliOk('sync');
    expect(sysctlOf(t.w.host, 'net.ipv4.conf.eth0m.forwarding')).toBe('1');
    expect(ip(t.w.host, '-4', 'route', 'show', 'table', 'all')).toMatch(/^198\.18\.0\.12 dev ivb\d+x\d+ table/m);
    expect(nftIn(t.w.host, 'list', 'table', 'inet', 'userfw')).toContain('comment "ipvlan-bpf:');
    expect(pings(t.w.wire, '198.18.0.12', 1)).toBe(1);
    env.delNetns(ns2);
    const out = env.cliOk('gc');
    expect(out).toMatch(/ipvl2/);
    expect(nftIn(t.w.host, 'list', 'table', 'inet', 'userfw')).not.toContain('ipvlan-bpf');
    nftIn(t.w.host, 'delete table inet userfw');
    expect(hostState(t)).toEqual(before);
  });

  it('a master that forwarded before keeps forwarding: no blackhole rule, transit as before, forwarding still on after the last link del', () => {
    sysctlIn(t.w.host, 'net.ipv4.conf.eth0m.forwarding=1', 'net.ipv6.conf.eth0m.force_forwarding=1');
    const ns3 = env.netns('ns3');
    env.cliOk('-n', t.w.host, 'link', 'add', 'link', 'eth0m', 'name', 'ipvl3', 'type', 'ipvlan', 'mode', 'l3s');
    ip(t.w.host, 'link', 'set', 'dev', 'ipvl3', 'netns', ns3);
    configureSlave(ns3, 'ipvl3', '198.18.0.13/24', '2001:db8::13/64', 'dev');
    env.cliOk('sync');
    expect(ip(t.w.host, '-4', 'rule', 'show') + ip(t.w.host, '-6', 'rule', 'show')).not.toContain('blackhole');
    const b = [snmp(far, 'Icmp', 'InEchos'), snmp(far, 'Icmp6', 'InEchos')];
    pings(t.w.wire, '198.18.8.2', 1);
    pings(t.w.wire, '2001:db8:8::2', 1);
    expect([snmp(far, 'Icmp', 'InEchos') - b[0]!, snmp(far, 'Icmp6', 'InEchos') - b[1]!]).toEqual([1, 1]);
    env.cliOk('-n', ns3, 'link', 'del', 'ipvl3');
    expect([sysctlOf(t.w.host, 'net.ipv4.conf.eth0m.forwarding'), sysctlOf(t.w.host, 'net.ipv6.conf.eth0m.force_forwarding')]).toEqual(['1', '1']);
    sysctlIn(t.w.host, 'net.ipv4.conf.eth0m.forwarding=0', 'net.ipv6.conf.eth0m.force_forwarding=0');
    expect(hostState(t)).toEqual(before);
  });
});
