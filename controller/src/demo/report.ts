// SPDX-License-Identifier: GPL-2.0-only
/** The demo's printed report: a title, the topology, one table per mode, the learned addresses, a verdict. */
import type { SlaveView } from '../link/manager.js';
import { ADDR, MASTER, ROUTER_DEV, L3_NET4 } from './topology.js';

export interface Row {
  path: string;
  target: string;
  expected: string;
  observed: string;
  /** why the kernel's ipvlan does what the expected column says, where that surprises */
  note?: string;
}

export const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

export function passed(r: Row): boolean {
  return r.expected === r.observed;
}

export function printTitle(pid: number): void {
  out(`ipvlan-bpf demo: the ipvlan HOWTO's example (§6), on eBPF, in namespaces ivbdemo-${pid}-*`);
  out();
  out(`  [router] ${ROUTER_DEV} ${ADDR.router4}/24 2001:db8::1/64, lo ${ADDR.remote4} ("remote")`);
  out('     |  veth (the wire)');
  out(`  [host]   ${MASTER} = master ${ADDR.master4}/24 2001:db8::2/64, default via router`);
  out('     #  ipvlan-bpf port');
  out('     ###################');
  out('     #                 #');
  out('   ipvl0 [ns0]      ipvl1 [ns1]    l2: .0.10 ::10 / .0.11 ::11, default via router');
  out(`                                   l3: ${L3_NET4.replace('.0/24', '')}.10 / .11, router: ${L3_NET4} via master`);
}

export function printSection(title: string): void {
  out();
  out(title);
  out(`  ${'path'.padEnd(15)}${'to'.padEnd(20)}${'expected'.padEnd(10)}${'observed'.padEnd(10)}`);
}

export function printRow(r: Row): void {
  const verdict = passed(r) ? 'PASS' : 'FAIL';
  const note = r.note ? `  ${r.note}` : '';
  out(`  ${r.path.padEnd(15)}${r.target.padEnd(20)}${r.expected.padEnd(10)}${r.observed.padEnd(10)}${verdict}${note}`);
}

/** `link show`, two lines a slave: where it is and its port's mode, then what the learner put in the map. */
export function printLearned(views: SlaveView[], shortNs: (ns: string | null | undefined) => string): void {
  for (const v of views) {
    const name = v.loc.link?.ifname ?? v.loc.record.name;
    out(`  ${name}@${v.port.master.name} [${shortNs(v.loc.netns)}] mode ${v.port.mode} ${v.port.flag} dev_id ${v.loc.record.devId}`);
    const addrs = [...v.addrs].sort((a, b) => addrRank(a) - addrRank(b));
    out(`      learned ${addrs.map((a) => `${a.addr}/${a.prefixlen}`).join(' ') || '(none)'}`);
  }
}

/** IPv4 first, then global IPv6, then link-local, as `ip addr` lists them */
function addrRank(a: { family: 4 | 6; addr: string }): number {
  if (a.family === 4) return 0;
  return a.addr.toLowerCase().startsWith('fe80:') ? 2 : 1;
}

export function printVerdict(rows: Row[]): void {
  const ok = rows.filter(passed).length;
  out();
  out(`demo: ${ok}/${rows.length} paths as the kernel's ipvlan would do them`);
}
