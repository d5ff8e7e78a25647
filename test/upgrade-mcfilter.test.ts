// SPDX-License-Identifier: GPL-2.0-only
/*
 * `ipvlan-bpf upgrade` from the layout of the build before issue 14
 * ("no-mc-filters", 71cac1c): every map as now but no ivb_mc_filters. A
 * live port is put into that state (the filter map unpinned, the old
 * fingerprint stamped); then a command refuses the maps naming `upgrade`,
 * `upgrade` adds the map and stamps this build's fingerprint while a ping
 * flow runs, and the port keeps forwarding and takes a new slave.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { closeFd, mapInfo, mapLookup, mapUpdate, objGet } from '../native/libbpf.js';
import { IvbMcFilterLayout } from '../maps/generated.js';
import { TestEnv, buildWire, configureSlave, ip, linkOf, ping, waitUntil, type Wire } from './lib/topo.js';
import { pingFlow } from './lib/hard-topo.js';

const env = new TestEnv('upgrade-mcfilter', 'ivbum');
let w: Wire;
let nsA: string;
const A4 = '198.18.0.10';
/** the fingerprint issue 13's landing (71cac1c) stamped: no ivb_mc_filters */
const NO_MC_FILTERS = '97c81d2d4092974b2c221a735608561a418d45e377b5e747ad171ee52445f53b';

const pin = (name: string): string => join(env.pinDir, 'maps', name);

beforeAll(() => {
  w = buildWire(env);
  nsA = env.netns('a');
  env.cliOk('-n', w.host, 'link', 'add', 'link', 'eth0m', 'name', 'ipvl0', 'type', 'ipvlan', 'mode', 'l2');
  ip(w.host, 'link', 'set', 'dev', 'ipvl0', 'netns', nsA);
  configureSlave(nsA, 'ipvl0', `${A4}/24`, '2001:db8::10/64', { gw4: w.routerV4, gw6: w.routerV6 });
  env.cliOk('sync');
}, 60_000);

afterAll(async () => {
  await env.cleanup();
});

describe('upgrade from the layout without multicast filters', () => {
  it('refused until upgraded; upgrade adds ivb_mc_filters under traffic and stamps the fingerprint', async () => {
    await waitUntil('the wire reaches the slave', () => ping(w.wire, A4), 10_000, 200);
    // the earlier build's state: no filter map pinned (the running programs keep theirs), its fingerprint
    rmSync(pin('ivb_mc_filters'));
    const fd = objGet(pin('ivb_layout'));
    try {
      mapUpdate(fd, Buffer.alloc(4), Buffer.from(NO_MC_FILTERS, 'hex'));
    } finally {
      closeFd(fd);
    }
    const add = env.cli(['-n', w.host, 'link', 'add', 'link', 'eth0m', 'name', 'ipvl9', 'type', 'ipvlan', 'mode', 'l2']);
    expect(add.status).not.toBe(0);
    expect(add.stderr).toMatch(/other map layouts \(97c81d2d4092.*"ipvlan-bpf upgrade" migrates them/);
    expect(linkOf(w.host, 'ipvl9')).toBeNull();
    expect(existsSync(pin('ivb_mc_filters'))).toBe(false);

    const flow = pingFlow(w.wire, A4, 200, 0.01);
    const up = env.cli(['upgrade']);
    const r = await flow.done;
    expect(up.status, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/maps: layout 97c81d2d4092 \(no-mc-filters\) given ivb_mc_filters/);
    expect(r.received).toBeGreaterThanOrEqual(197);

    const m = objGet(pin('ivb_mc_filters'));
    try {
      expect(mapInfo(m).valueSize).toBe(IvbMcFilterLayout.size);
    } finally {
      closeFd(m);
    }
    const l = objGet(pin('ivb_layout'));
    try {
      // another fingerprint now: this build's, as the commands below (which refuse any other) show
      expect(mapLookup(l, Buffer.alloc(4), 32)!.toString('hex')).not.toBe(NO_MC_FILTERS);
    } finally {
      closeFd(l);
    }
    // this build's maps: commands work, the port forwards and takes a slave
    env.cliOk('-n', w.host, 'link', 'add', 'link', 'eth0m', 'name', 'ipvl9', 'type', 'ipvlan', 'mode', 'l2');
    expect(linkOf(w.host, 'ipvl9')).not.toBeNull();
    expect(ping(w.wire, A4)).toBe(true);
  });
});
