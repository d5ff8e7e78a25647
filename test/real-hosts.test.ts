// SPDX-License-Identifier: GPL-2.0-only
/*
 * Issue 11, part 1: l3 and l3s on real hosts. In the master's namespace,
 * net.ipv4.conf.all.rp_filter 0, 1 and 2, and a FORWARD policy of drop set
 * the way Docker does it (iptables-nft) or as a plain nft base chain: slave
 * egress and ingress, IPv4 and IPv6, work in both modes; our accept rules
 * are what makes them work under the drop policy (taken away by hand,
 * traffic stops; `sync` puts them back); after the last `link del` the
 * rules, routes, sysctls and ruleset of the master's namespace are what
 * they were before the first `link add`.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { TestEnv, ip, must, type Agent } from './lib/topo.js';
import { addSlaves, buildHostTopo, hostState, nftIn, pings, sysctlIn, type HostTopo } from './lib/hostnet.js';

const FIREWALLS = ['none', 'iptables-nft', 'nft'] as const;
type Firewall = (typeof FIREWALLS)[number];

function setFirewall(ns: string, fw: Firewall): void {
  if (fw === 'iptables-nft') {
    // Docker's shape: the filter table's FORWARD chain with policy DROP, and a rule of someone else's
    for (const tool of ['iptables-nft', 'ip6tables-nft']) {
      must('ip', ['netns', 'exec', ns, tool, '-P', 'FORWARD', 'DROP']);
      must('ip', ['netns', 'exec', ns, tool, '-A', 'FORWARD', '-i', 'docker0', '-j', 'ACCEPT']);
    }
  } else if (fw === 'nft') {
    nftIn(ns, 'add table inet userfw');
    nftIn(ns, 'add chain inet userfw forward { type filter hook forward priority 0; policy drop; }');
    nftIn(ns, 'add rule inet userfw forward ct state established,related accept');
  }
}

/** our accept rules in the master's namespace (their comments) */
function ourAccepts(ns: string): string[] {
  return nftIn(ns, 'list', 'ruleset').split('\n').filter((l) => l.includes('comment "ipvlan-bpf:'));
}

for (const fw of FIREWALLS) {
  describe(`l3 and l3s on a host with rp_filter 0/1/2, FORWARD policy: ${fw === 'none' ? 'accept' : `drop via ${fw}`}`, () => {
    const env = new TestEnv(`realhost-${fw}`, `ivr${FIREWALLS.indexOf(fw)}`);
    let t: HostTopo;
    let before: Record<string, string>;
    let agent: Agent;

    beforeAll(async () => {
      t = buildHostTopo(env);
      setFirewall(t.w.host, fw);
      before = hostState(t);
      agent = await env.startAgent();
    });
    afterAll(async () => {
      await env.cleanup();
    });

    it('slaves are added in l3 and learned', async () => {
      await addSlaves(env, t, 'l3');
      if (fw !== 'none') {
        // one accept per direction per peer, in the one drop-policy chain (per family for iptables)
        expect(ourAccepts(t.w.host).length).toBe(fw === 'nft' ? 4 : 8);
      } else {
        expect(ourAccepts(t.w.host)).toEqual([]);
      }
    });

    for (const mode of ['l3', 'l3s'] as const) {
      for (const rp of [0, 1, 2]) {
        it(`${mode}, all.rp_filter=${rp}: egress and ingress, IPv4 and IPv6, without loss`, () => {
          if (mode === 'l3s') env.cliOk('-n', t.s0.ns, 'link', 'set', 'dev', t.s0.dev, 'type', 'ipvlan', 'mode', 'l3s');
          sysctlIn(t.w.host, `net.ipv4.conf.all.rp_filter=${rp}`);
          const got = {
            egress4: pings(t.s0.ns, t.w.routerV4),
            egress6: pings(t.s0.ns, t.w.routerV6),
            ingress4: pings(t.w.wire, t.s1.v4),
            ingress6: pings(t.w.wire, t.s1.v6),
          };
          expect(got).toEqual({ egress4: 3, egress6: 3, ingress4: 3, ingress6: 3 });
        });
      }
    }

    if (fw === 'none') {
      it('the control: without the iif rule, all.rp_filter 1 and 2 drop l3 egress', async () => {
        // the agent's resync would put the rule back: stopped, so that nothing races the check
        await agent.stop();
        env.cliOk('-n', t.s0.ns, 'link', 'set', 'dev', t.s0.dev, 'type', 'ipvlan', 'mode', 'l3');
        const rule = ip(t.w.host, '-4', 'rule', 'show').split('\n').find((l) => / iif eth0m lookup /.test(l))!;
        const [pref, table] = [rule.split(':')[0]!, rule.split(' lookup ')[1]!.trim()];
        ip(t.w.host, '-4', 'rule', 'del', 'pref', pref);
        try {
          const lost: number[] = [];
          for (const rp of [0, 1, 2]) {
            sysctlIn(t.w.host, `net.ipv4.conf.all.rp_filter=${rp}`);
            lost.push(3 - pings(t.s0.ns, t.w.routerV4));
          }
          expect(lost).toEqual([0, 3, 3]);
        } finally {
          ip(t.w.host, '-4', 'rule', 'add', 'pref', pref, 'iif', 'eth0m', 'lookup', table);
          sysctlIn(t.w.host, 'net.ipv4.conf.all.rp_filter=0');
        }
        env.cliOk('-n', t.s0.ns, 'link', 'set', 'dev', t.s0.dev, 'type', 'ipvlan', 'mode', 'l3s');
      });
    }

    if (fw !== 'none') {
      it('the accepts are what lets traffic through: removed by hand it stops, `sync` puts them back', async () => {
        // the agent's resync would put them back too: stopped, so that nothing races the check
        await agent.stop();
        const rules = JSON.parse(nftIn(t.w.host, '-a', '-j', 'list', 'ruleset')) as {
          nftables: Array<{ rule?: { family: string; table: string; chain: string; handle: number; comment?: string } }>;
        };
        for (const { rule } of rules.nftables) {
          if (rule?.comment?.startsWith('ipvlan-bpf:')) {
            nftIn(t.w.host, 'delete', 'rule', rule.family, rule.table, rule.chain, 'handle', String(rule.handle));
          }
        }
        expect(ourAccepts(t.w.host)).toEqual([]);
        expect(pings(t.s0.ns, t.w.routerV4, 1)).toBe(0);
        expect(pings(t.w.wire, t.s0.v6, 1)).toBe(0);
        env.cliOk('sync');
        expect(pings(t.s0.ns, t.w.routerV4)).toBe(3);
        expect(pings(t.w.wire, t.s0.v6)).toBe(3);
      });
    }

    it('back to l3 at run time; after the last link del nothing of ours remains and the policy is as it was', () => {
      env.cliOk('-n', t.s0.ns, 'link', 'set', 'dev', t.s0.dev, 'type', 'ipvlan', 'mode', 'l3');
      expect(pings(t.s0.ns, t.w.routerV4)).toBe(3);
      sysctlIn(t.w.host, 'net.ipv4.conf.all.rp_filter=0');
      env.cliOk('-n', t.s0.ns, 'link', 'del', t.s0.dev);
      env.cliOk('-n', t.s1.ns, 'link', 'del', t.s1.dev);
      expect(ip(t.w.host, 'link', 'show').match(/ivb\d+x\d+/g)).toBeNull();
      expect(hostState(t)).toEqual(before);
    });
  });
}
