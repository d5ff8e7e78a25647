// SPDX-License-Identifier: GPL-2.0-only
/*
 * ipvlan-bpf as a user installs it (issue 15): `npm pack` of a copy of this
 * checkout (its prepack builds the objects and the JavaScript, as a
 * maintainer's would), `npm install -g --prefix TMP` of the tarball, then
 * everything from the installed copy with a PATH that holds only what the
 * package says it needs at run time — no clang, llvm, tsc, bpftool, make:
 * the demo, `version -j`, `cni install` twice, the installed plugin through
 * ADD/CHECK/DEL with Debian's host-local and real pings, the systemd unit
 * through `systemd-analyze verify`, and the one-line answer when a run-time
 * package is missing.
 *
 * Everything lives under one temporary folder (copy, tarball, prefix, CNI
 * bin dir, PATH of tools), removed at the end, on failure too.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Agent, TestEnv, buildWire, run, type Wire } from './lib/topo.js';
import { createServer } from 'node:net';
import { CniRuntime, ensurePackage, hostLocalLeases, reaches, DEBIAN_CNI_DIR } from './lib/cni-runtime.js';
import { REPO } from './lib/topo.js';

const env = new TestEnv('package', 'ivbk');
const WORK = mkdtempSync('/tmp/ivb-test-package-');
env.onCleanup(() => rmSync(WORK, { recursive: true, force: true }));
const PREFIX = join(WORK, 'prefix');
const TOOLS = join(WORK, 'tools');
const CNI_DIR = join(WORK, 'cni-bin');
const NET = `ivbk${process.pid}`;
const DATA_DIR = join(WORK, 'ipam');

/** What the package needs at run time (controller/src/platform/requirements.ts), and what starts it. */
const RUNTIME_TOOLS = ['node', 'ip', 'sysctl', 'nft', 'nsenter', 'setpriv', 'ping', 'sh', 'cat', 'mount', 'unshare'];
const BUILD_TOOLS = ['clang', 'llc', 'llvm-objdump', 'llvm-strip', 'tsc', 'bpftool', 'make', 'gcc'];
/** PATH for the installed tool: its bin folder and the run-time tools, nothing else */
const RUNTIME_PATH = `${join(PREFIX, 'bin')}:${TOOLS}`;

const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { name: string; version: string };
const INSTALLED = join(PREFIX, 'lib', 'node_modules', pkg.name);

interface Ran {
  status: number;
  stdout: string;
  stderr: string;
}

/** A command with the run-time PATH (and the test's private state folders). */
function installed(cmd: string, args: readonly string[], extraEnv: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Ran {
  const r = spawnSync(cmd, args, { env: { ...env.env, PATH: RUNTIME_PATH, ...extraEnv }, encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

function must(cmd: string, args: readonly string[], cwd: string, timeoutMs: number): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutMs, env: process.env });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} -> ${r.status}: ${r.stderr}${r.error ? String(r.error) : ''}`);
  return r.stdout;
}

/** This checkout's sources (tracked and untracked, not ignored: no dist/, no objects), as a fresh clone has them. */
function stageCheckout(dest: string): void {
  const files = must('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], REPO, 30_000).split('\0').filter((f) => f !== '');
  for (const f of files) {
    const from = join(REPO, f);
    // deleted in the work tree but not yet in git; node_modules linked into a work tree (not a folder, so not ignored)
    if (f === 'node_modules' || !existsSync(from) || !lstatSync(from).isFile()) continue;
    mkdirSync(dirname(join(dest, f)), { recursive: true });
    copyFileSync(from, join(dest, f));
    chmodSync(join(dest, f), statSync(from).mode & 0o777);
  }
  symlinkSync(realpathSync(join(REPO, 'node_modules')), join(dest, 'node_modules'));
}

/** A loopback TCP port nothing listens on now. */
function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === 'object' ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

let tarball = '';
let w: Wire;

beforeAll(() => {
  ensurePackage('containernetworking-plugins', `${DEBIAN_CNI_DIR}/host-local`);
  // the package: built by its own prepack in a copy, so this checkout's dist/ and bpf/ are not touched
  const src = join(WORK, 'src');
  stageCheckout(src);
  must('npm', ['pack', '--pack-destination', WORK], src, 600_000);
  const tgz = readdirSync(WORK).filter((f) => f.endsWith('.tgz'));
  expect(tgz).toEqual([`${pkg.name}-${pkg.version}.tgz`]);
  tarball = join(WORK, tgz[0]!);
  rmSync(src, { recursive: true, force: true });
  must('npm', ['install', '-g', '--prefix', PREFIX, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], WORK, 600_000);
  mkdirSync(TOOLS);
  for (const t of RUNTIME_TOOLS) {
    const p = run('sh', ['-c', `command -v ${t}`]).stdout.trim();
    if (!p) throw new Error(`${t} is not installed on this machine`);
    symlinkSync(p, join(TOOLS, t));
  }
  env.onCleanup(() => rmSync(DATA_DIR, { recursive: true, force: true }));
  w = buildWire(env);
}, 900_000);

afterAll(async () => {
  await env.cleanup();
});

describe('the npm package', () => {
  it('holds the built JavaScript, the compiled objects and the unit; nothing to compile, no dev tools', () => {
    const files = run('tar', ['tzf', tarball]).stdout.split('\n').filter((f) => f !== '');
    for (const f of ['bin/ipvlan-bpf.js', 'bin/ipvlan-bpf-cni.js', 'dist/controller/src/cli/main.js', 'dist/build-info.json', 'bpf/master_ingress.bpf.o', 'bpf/slave_egress.bpf.o', 'bpf/peer_egress.bpf.o', 'bpf/guard.bpf.o', 'proto/ipvlan_bpf.proto', 'systemd/ipvlan-bpf-agent.service', 'npm-shrinkwrap.json']) {
      expect(files).toContain(`package/${f}`);
    }
    expect(files.filter((f) => /\.(ts|c|h)$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.filter((f) => f.includes('/test/') || f.includes('/bench/'))).toEqual([]);
    // installed: both commands on the prefix's PATH; run-time dependencies only
    expect(realpathSync(join(PREFIX, 'bin', 'ipvlan-bpf'))).toBe(join(INSTALLED, 'bin', 'ipvlan-bpf.js'));
    expect(realpathSync(join(PREFIX, 'bin', 'ipvlan-bpf-cni'))).toBe(join(INSTALLED, 'bin', 'ipvlan-bpf-cni.js'));
    const deps = readdirSync(join(INSTALLED, 'node_modules'));
    expect(deps).toContain('koffi');
    for (const dev of ['typescript', 'vitest', '@types', 'pngjs']) expect(deps).not.toContain(dev);
  });

  it('the run-time PATH has none of the build tools', () => {
    for (const t of BUILD_TOOLS) {
      expect(installed('sh', ['-c', `command -v ${t}`]).status, `${t} reachable`).not.toBe(0);
    }
    expect(installed('sh', ['-c', 'command -v ipvlan-bpf']).stdout.trim()).toBe(join(PREFIX, 'bin', 'ipvlan-bpf'));
  });

  it('version -j: the package version, the build id of the shipped objects, the kernel features with reasons', () => {
    const r = installed('ipvlan-bpf', ['-j', 'version']);
    expect(r.status, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as {
      name: string;
      version: string;
      objects: { buildId: string; matchesRecord: boolean; recorded: { buildId: string; clang: string } };
      features: Record<string, { available: boolean; detail: string; usedFor: string }>;
      missing: unknown[];
    };
    expect(v.name).toBe(pkg.name);
    expect(v.version).toBe(pkg.version);
    expect(v.objects.buildId).toMatch(/^[0-9a-f]{16}$/);
    expect(v.objects.matchesRecord).toBe(true);
    expect(v.objects.recorded.clang).toMatch(/clang/);
    expect(Object.keys(v.features).sort()).toEqual(['bpf_lsm', 'btf', 'conntrack_kfuncs', 'netkit', 'rtnl_mcaddr', 'tcx', 'tracing']);
    for (const [name, f] of Object.entries(v.features)) {
      expect(typeof f.available, name).toBe('boolean');
      expect(f.detail.length, name).toBeGreaterThan(0);
      // a refusal says what the kernel answered
      if (!f.available) expect(f.detail, name).toMatch(/\(E[A-Z0-9]+\)|: E[A-Z]+ |no |missing|not among/);
    }
    expect(v.features.btf!.available).toBe(existsSync('/sys/kernel/btf/vmlinux'));
    expect(v.missing).toEqual([]);
    console.log(Object.entries(v.features).map(([n, f]) => `${n}: ${f.available ? 'yes' : 'no'} (${f.detail})`).join('\n'));
  });

  it('a changed object no longer matches the build record', () => {
    const obj = join(INSTALLED, 'bpf', 'peer_egress.bpf.o');
    const saved = readFileSync(obj);
    try {
      writeFileSync(obj, Buffer.concat([saved, Buffer.from([0])]));
      const v = JSON.parse(installed('ipvlan-bpf', ['-j', 'version']).stdout) as { objects: { matchesRecord: boolean } };
      expect(v.objects.matchesRecord).toBe(false);
      expect(installed('ipvlan-bpf', ['version']).stdout).toMatch(/DIFFERENT from the recorded build/);
    } finally {
      writeFileSync(obj, saved);
    }
  });

  it('ipvlan-bpf demo passes from the installed package', () => {
    const r = installed('ipvlan-bpf', ['demo'], {}, 120_000);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const m = /^demo: (\d+)\/(\d+) paths as the kernel's ipvlan would do them$/m.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(m![1]).toBe(m![2]);
  });

  it('a missing run-time package is one line naming the Debian package', () => {
    // only node: no ip, nft (sysctl: only the demo's)
    const bare = join(WORK, 'bare');
    mkdirSync(bare, { recursive: true });
    if (!existsSync(join(bare, 'node'))) symlinkSync(process.execPath, join(bare, 'node'));
    const r = installed('ipvlan-bpf', ['link', 'show'], { PATH: `${join(PREFIX, 'bin')}:${bare}` });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(['ipvlan-bpf: ip (iproute2), nft (nftables) are missing: apt-get install iproute2 nftables']);
    // libbpf hidden from this process only (a private mount namespace)
    const lib = run('sh', ['-c', 'ldconfig -p | awk \'/libbpf\\.so\\.1 /{print $NF; exit}\'']).stdout.trim();
    expect(lib).not.toBe('');
    const h = installed('unshare', ['-m', 'sh', '-c', `mount --bind /dev/null ${lib} && exec ipvlan-bpf link show`]);
    expect(h.status).toBe(1);
    expect(h.stderr.trim().split('\n')).toEqual(['ipvlan-bpf: the library libbpf.so.1 (libbpf1) is missing: apt-get install libbpf1']);
    const help = installed('unshare', ['-m', 'sh', '-c', `mount --bind /dev/null ${lib} && exec ipvlan-bpf help`]);
    expect(help.stderr.trim()).toBe('ipvlan-bpf: the library libbpf.so.1 (libbpf1) is missing: apt-get install libbpf1');
    const v = installed('unshare', ['-m', 'sh', '-c', `mount --bind /dev/null ${lib} && exec ipvlan-bpf -j version`]);
    expect(v.status).toBe(0);
    const j = JSON.parse(v.stdout) as { features: unknown; featuresError: string };
    expect(j.features).toBeNull();
    expect(j.featuresError).toMatch(/apt-get install libbpf1/);
  });

  it('cni install twice gives one plugin, up to date; a foreign file is refused without --force', () => {
    const first = installed('ipvlan-bpf', ['cni', 'install', '--dir', CNI_DIR]);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout.trim()).toBe(`installed ${CNI_DIR}/ipvlan-bpf-cni`);
    const text = readFileSync(join(CNI_DIR, 'ipvlan-bpf-cni'), 'utf8');
    const second = installed('ipvlan-bpf', ['cni', 'install', '--dir', CNI_DIR]);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout.trim()).toBe(`${CNI_DIR}/ipvlan-bpf-cni is up to date`);
    expect(readdirSync(CNI_DIR)).toEqual(['ipvlan-bpf-cni']);
    expect(readFileSync(join(CNI_DIR, 'ipvlan-bpf-cni'), 'utf8')).toBe(text);
    expect(statSync(join(CNI_DIR, 'ipvlan-bpf-cni')).mode & 0o111).toBe(0o111);
    // it runs the installed package's plugin, not this checkout's
    expect(text).toContain(join(INSTALLED, 'bin', 'ipvlan-bpf-cni.js'));
    const ver = installed(join(CNI_DIR, 'ipvlan-bpf-cni'), [], { CNI_COMMAND: 'VERSION' });
    expect(ver.status, ver.stderr).toBe(0);
    expect((JSON.parse(ver.stdout) as { supportedVersions: string[] }).supportedVersions).toContain('1.0.0');

    const other = join(WORK, 'cni-other');
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, 'ipvlan-bpf-cni'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const refused = installed('ipvlan-bpf', ['cni', 'install', '--dir', other]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/was not written by "ipvlan-bpf cni install".*--force/);
    expect(readFileSync(join(other, 'ipvlan-bpf-cni'), 'utf8')).toBe('#!/bin/sh\nexit 0\n');
    const forced = installed('ipvlan-bpf', ['cni', 'install', '--dir', other, '--force']);
    expect(forced.status, forced.stderr).toBe(0);
    expect(forced.stdout.trim()).toBe(`replaced ${other}/ipvlan-bpf-cni`);
    expect(readdirSync(other)).toEqual(['ipvlan-bpf-cni']);
  });

  it('the installed plugin: ADD, CHECK, DEL with host-local, traffic between containers and to the router', () => {
    if (!existsSync(join(CNI_DIR, 'ipvlan-bpf-cni'))) installed('ipvlan-bpf', ['cni', 'install', '--dir', CNI_DIR]);
    const rt = new CniRuntime(env, w.host, `${CNI_DIR}:${DEBIAN_CNI_DIR}`, [join(CNI_DIR, 'ipvlan-bpf-cni')]);
    const conf = {
      cniVersion: '1.0.0',
      name: NET,
      type: 'ipvlan-bpf-cni',
      master: w.master,
      mode: 'l2',
      ipam: { type: 'host-local', dataDir: DATA_DIR, ranges: [[{ subnet: '198.18.0.0/24', rangeStart: '198.18.0.100', rangeEnd: '198.18.0.199', gateway: w.routerV4 }]], routes: [{ dst: '0.0.0.0/0' }] },
    };
    const runtimeEnv = { PATH: RUNTIME_PATH };
    const a = `/var/run/netns/${env.netns('a')}`;
    const b = `/var/run/netns/${env.netns('b')}`;
    const added: Array<{ id: string; netns: string }> = [];
    try {
      const results = [
        { id: 'ctr-a', netns: a },
        { id: 'ctr-b', netns: b },
      ].map((c) => {
        const r = rt.ok({ command: 'ADD', containerId: c.id, netns: c.netns, ifname: 'eth0', config: conf, env: runtimeEnv });
        added.push(c);
        return r.json as { ips: Array<{ address: string }>; interfaces: Array<{ name: string; sandbox: string }> };
      });
      const [ra, rb] = results;
      expect(ra!.interfaces.find((i) => i.sandbox === a)?.name).toBe('eth0');
      const addrB = rb!.ips[0]!.address.split('/')[0]!;
      expect(reaches(a, addrB)).toBe(true);
      expect(reaches(b, w.routerV4)).toBe(true);
      for (const [c, r] of [[added[0]!, ra], [added[1]!, rb]] as const) {
        rt.ok({ command: 'CHECK', containerId: c.id, netns: c.netns, ifname: 'eth0', config: { ...conf, prevResult: r }, env: runtimeEnv });
      }
    } finally {
      for (const c of added) rt.call({ command: 'DEL', containerId: c.id, netns: c.netns, ifname: 'eth0', config: conf, env: runtimeEnv });
    }
    for (const c of added) rt.ok({ command: 'DEL', containerId: c.id, netns: c.netns, ifname: 'eth0', config: conf, env: runtimeEnv });
    expect(hostLocalLeases(DATA_DIR, NET)).toEqual([]);
    expect(env.show()).toEqual([]);
    expect(env.stateFiles()).toEqual([]);
  });

  it("the unit's command line, with its commented options, runs the installed agent: metrics served, clean stop", async () => {
    const text = readFileSync(join(INSTALLED, 'systemd', 'ipvlan-bpf-agent.service'), 'utf8');
    const execStart = /^ExecStart=(.*)$/m.exec(text)![1]!.trim().split(/\s+/);
    expect(execStart).toEqual(['/usr/bin/env', 'ipvlan-bpf', 'agent', '$IPVLAN_BPF_AGENT_OPTS']);
    const commented = /^#Environment="IPVLAN_BPF_AGENT_OPTS=(--metrics \S+ --api \S+)"$/m.exec(text)![1]!;
    const port = await freePort();
    const sock = join(WORK, 'api.sock');
    const opts = commented.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${port}`).replace(/--api \S+/, `--api ${sock}`).split(' ');
    const agent = new Agent({ ...env.env, PATH: RUNTIME_PATH }, [...execStart.slice(0, 3), ...opts]);
    env.onCleanup(() => agent.killGroup());
    try {
      await agent.waitForLine(/ipvlan-bpf agent: started/, 20_000);
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/^ipvlan_bpf_/m);
      expect(existsSync(sock)).toBe(true);
    } finally {
      await agent.stop();
    }
    expect(agent.proc.exitCode, agent.lines.join('\n')).toBe(0);
    expect(agent.leftovers()).toEqual([]);
  });

  it('systemd-analyze verify accepts the agent unit as shipped (and refuses a broken copy)', () => {
    ensurePackage('systemd', '/usr/bin/systemd-analyze');
    const unit = join(INSTALLED, 'systemd', 'ipvlan-bpf-agent.service');
    const text = readFileSync(unit, 'utf8');
    expect(text).toMatch(/^Restart=always$/m);
    expect(text).toMatch(/^#.*--metrics/m);
    expect(text).toMatch(/^#.*--api/m);
    const ok = run('systemd-analyze', ['verify', unit]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stderr.trim()).toBe('');
    // the check can fail: the same unit with an ExecStart that does not exist
    const broken = join(WORK, 'ipvlan-bpf-agent.service');
    writeFileSync(broken, text.replace(/^ExecStart=.*$/m, 'ExecStart=/nonexistent/ipvlan-bpf agent'));
    const bad = run('systemd-analyze', ['verify', broken]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/not executable/);
  });
});
