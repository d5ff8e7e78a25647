// SPDX-License-Identifier: GPL-2.0-only
/*
 * A real runtime (issue 7): Podman from Debian's packages, with its CNI
 * network backend, runs a container from a local root filesystem
 * (busybox-static; `--rootfs`, no image pulled) attached through
 * ipvlan-bpf-cni, and the container reaches a peer namespace on the
 * master's wire. Podman runs the plugin in the init namespace, so the
 * master is a veth with a unique name there; its peer is in a test namespace.
 *
 * Podman is kept away from the host's own state: private containers.conf
 * (CONTAINERS_CONF), storage root, run root, tmp dir and network config dir,
 * the vfs storage driver. The OCI runtime is runc: Debian's crun 1.8.1
 * refuses this machine's hybrid cgroup hierarchy ("cgroups in hybrid mode
 * not supported, drop all controllers from cgroupv2": hugetlb sits on the v2
 * mount); ulimits are given explicitly because the sandbox does not let crun
 * or runc raise RLIMIT_NOFILE to Podman's default.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { TestEnv, ip, must, run } from './lib/topo.js';
import { CNI_BIN, DEBIAN_CNI_DIR, ensurePackage, hostLocalLeases } from './lib/cni-runtime.js';

const env = new TestEnv('cni-podman', 'ivbq');
const TMP = `/run/ivb-test-cni-podman-${process.pid}`;
const NET = `ivbpod${process.pid}`;
const MASTER = `ivbpm${process.pid % 10_000_000}`;
let peerNs = '';
let skipReason = '';

function podman(args: string[], timeoutMs = 120_000): ReturnType<typeof run> {
  const e = { ...process.env, CONTAINERS_CONF: join(TMP, 'containers.conf') };
  return run(
    'podman',
    ['--root', join(TMP, 'root'), '--runroot', join(TMP, 'runroot'), '--storage-driver', 'vfs', '--tmpdir', join(TMP, 'libpod'), ...args],
    { env: e, timeoutMs },
  );
}

beforeAll(() => {
  ensurePackage('containernetworking-plugins', `${DEBIAN_CNI_DIR}/host-local`);
  try {
    ensurePackage('podman', '/usr/bin/podman');
    ensurePackage('runc', '/usr/sbin/runc');
    ensurePackage('busybox-static', '/bin/busybox');
  } catch (e) {
    skipReason = `podman cannot be installed here: ${e instanceof Error ? e.message : String(e)}`;
    return;
  }
  // libcni's result cache is not configurable through Podman: removed afterwards if we made it
  const made = ['/var/lib/cni/results', '/var/lib/cni'].filter((d) => !existsSync(d));
  env.onCleanup(() => {
    for (const d of made) rmSync(d, { recursive: true, force: true });
    try {
      for (const f of readdirSync('/var/lib/cni/results')) if (f.startsWith(`${NET}-`)) rmSync(join('/var/lib/cni/results', f), { force: true });
    } catch {
      /* no cache */
    }
  });
  env.onCleanup(() => {
    run('ip', ['link', 'del', MASTER]);
    rmSync(TMP, { recursive: true, force: true });
  });
  for (const d of ['bin', 'net.d', 'ipam', 'root', 'runroot', 'libpod', 'rootfs/bin', 'rootfs/etc', 'rootfs/proc', 'rootfs/sys', 'rootfs/dev', 'rootfs/tmp', 'rootfs/run']) {
    mkdirSync(join(TMP, d), { recursive: true });
  }
  // the root filesystem: busybox alone
  must('cp', ['/bin/busybox', join(TMP, 'rootfs/bin/busybox')]);
  for (const app of ['sh', 'ip', 'ping']) symlinkSync('busybox', join(TMP, 'rootfs/bin', app));
  // the plugin as Podman finds it (by "type" in cni_plugin_dirs), with the test's private state
  const wrapper = join(TMP, 'bin', 'ipvlan-bpf-cni');
  writeFileSync(
    wrapper,
    `#!/bin/sh\nexport IPVLAN_BPF_STATE_DIR='${env.stateDir}' IPVLAN_BPF_PIN_SUBDIR='${env.pinSubdir}'\nexec '${process.execPath}' '${CNI_BIN}'\n`,
  );
  chmodSync(wrapper, 0o755);
  writeFileSync(
    join(TMP, 'containers.conf'),
    [
      '[network]',
      'network_backend = "cni"',
      `cni_plugin_dirs = ["${join(TMP, 'bin')}", "${DEBIAN_CNI_DIR}"]`,
      `network_config_dir = "${join(TMP, 'net.d')}"`,
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      'runtime = "runc"',
      `tmp_dir = "${join(TMP, 'libpod')}"`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(TMP, 'net.d', `${NET}.conflist`),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: NET,
      plugins: [{ type: 'ipvlan-bpf-cni', master: MASTER, mode: 'l2', ipam: { type: 'host-local', subnet: '198.18.7.0/24', dataDir: join(TMP, 'ipam') } }],
    }),
  );
  // the wire: MASTER in the init namespace, its peer (the "outside" host) in a test namespace
  peerNs = env.netns('peer');
  must('ip', ['link', 'add', MASTER, 'address', '02:00:00:00:07:02', 'type', 'veth', 'peer', 'name', 'wp0', 'netns', peerNs]);
  must('ip', ['link', 'set', MASTER, 'up']);
  ip(peerNs, 'link', 'set', 'wp0', 'up');
  ip(peerNs, 'addr', 'add', '198.18.7.1/24', 'dev', 'wp0');
});

afterAll(async () => {
  await env.cleanup();
});

describe('Podman (CNI backend) with ipvlan-bpf-cni', () => {
  it('runs a container from a local rootfs that reaches a peer namespace, and tears it down', (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const netnsBefore = readdirSync('/run/netns').filter((n) => n.startsWith('netns-'));
    const r = podman([
      'run', '--rm', '--network', NET, '--cap-add', 'NET_RAW',
      '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024',
      '--rootfs', join(TMP, 'rootfs'),
      '/bin/sh', '-c', 'ip addr show dev eth0; ping -c 1 -W 2 198.18.7.1 || ping -c 1 -W 2 198.18.7.1',
    ]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/inet 198\.18\.7\.\d+\/24/);
    expect(r.stdout).toContain('02:00:00:00:07:02');
    expect(r.stdout).toMatch(/1 packets received/);
    // --rm: Podman ran DEL; nothing of the attachment is left
    expect(env.show()).toEqual([]);
    expect(hostLocalLeases(join(TMP, 'ipam'), NET)).toEqual([]);
    expect(readdirSync('/run/netns').filter((n) => n.startsWith('netns-') && !netnsBefore.includes(n))).toEqual([]);
  });
});
