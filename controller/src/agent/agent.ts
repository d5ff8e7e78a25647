// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ipvlan-bpf agent [--metrics ADDR:PORT] [--api SOCKET]`: the long-running
 * learner, optionally with a Prometheus endpoint (loopback only) and the
 * control API on a Unix socket. Forwarding does not depend on it being up.
 */
import { writeFileSync, rmSync, readFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { Learner } from './learner.js';
import { SlowPath } from './slowpath.js';
import { ensureDir, stateDir } from '../paths.js';
import { IvbError, EINVAL, errorLine, isSysError } from '../errors.js';
// prom-client and protobufjs are loaded only when --metrics / --api ask for them (start-up time)
import type { MetricsServer } from '../metrics/metrics.js';
import type { ApiServer } from '../api/server.js';

export interface AgentOptions {
  /** ADDR:PORT of the metrics endpoint (loopback), or null */
  metrics: string | null;
  /** path of the control API's Unix socket, or null */
  api: string | null;
}

export function parseAgentArgs(words: readonly string[]): AgentOptions {
  const o: AgentOptions = { metrics: null, api: null };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const v = words[i + 1];
    if (w === '--metrics' || w === 'metrics') {
      if (!v) throw new IvbError('IPVLAN_E_USAGE', 'agent: --metrics needs ADDRESS:PORT (e.g. 127.0.0.1:9464)', EINVAL);
      // checked (bad or non-loopback address) before anything starts: runAgent
      o.metrics = v;
      i++;
    } else if (w === '--api' || w === 'api') {
      if (!v) throw new IvbError('IPVLAN_E_USAGE', 'agent: --api needs the path of a Unix socket', EINVAL);
      o.api = resolvePath(v);
      i++;
    } else {
      throw new IvbError('IPVLAN_E_USAGE', `agent: unknown argument "${w}" (agent [--metrics ADDR:PORT] [--api SOCKET])`, EINVAL);
    }
  }
  return o;
}

export async function runAgent(opts: AgentOptions = { metrics: null, api: null }): Promise<number> {
  const metricsLib = opts.metrics ? await import('../metrics/metrics.js') : null;
  // refuse a bad or non-loopback address before starting anything
  if (opts.metrics) metricsLib!.parseListen(opts.metrics);
  const apiLib = opts.api ? { ...(await import('../api/server.js')), ...(await import('../api/client.js')) } : null;
  const log = (line: string): void => {
    process.stdout.write(`${new Date().toISOString()} ipvlan-bpf agent: ${line}\n`);
  };
  ensureDir(stateDir());
  const pidFile = join(stateDir(), 'agent.pid');
  writeFileSync(pidFile, String(process.pid));
  let metrics: MetricsServer | null = null;
  let api: ApiServer | null = null;
  const learner = new Learner(log);
  const slowPath = new SlowPath(learner, log);
  // the slow path starts with the datapath's maps (the first port creates them)
  let slowPathWait: NodeJS.Timeout | null = null;
  const shutdown = async (): Promise<void> => {
    if (slowPathWait) clearInterval(slowPathWait);
    slowPath.stop();
    await learner.stop();
    if (api) {
      await api.stop().catch(() => undefined);
      // only our own record: a newer agent may have taken over the file
      try {
        if (readFileSync(apiLib!.apiPathFile(), 'utf8').trim() === api.path) rmSync(apiLib!.apiPathFile(), { force: true });
      } catch (e) {
        if (!isSysError(e, 'ENOENT')) throw e;
      }
    }
    if (metrics) await metrics.close().catch(() => undefined);
    rmSync(pidFile, { force: true });
  };
  try {
    if (opts.metrics) {
      const { Counter } = await import('prom-client');
      const registry = metricsLib!.createRegistry();
      new Counter({
        name: 'ipvlan_bpf_address_refusals_total',
        help: 'Addresses a slave configured that the learner refused (owned by a sibling, or the table is full)',
        labelNames: ['master'] as const,
        registers: [registry],
        collect() {
          this.reset();
          for (const [master, n] of learner.refusals) this.inc({ master }, n);
        },
      });
      metrics = await metricsLib!.startMetricsServer(opts.metrics, registry);
      log(`metrics on http://${metrics.address.host.includes(':') ? `[${metrics.address.host}]` : metrics.address.host}:${metrics.address.port}/metrics`);
    }
    if (opts.api) {
      api = new apiLib!.ApiServer(opts.api, log);
      await api.start();
      writeFileSync(apiLib!.apiPathFile(), `${opts.api}\n`);
      log(`api on ${opts.api}`);
    }
  } catch (e) {
    log(`cannot start: ${errorLine(e)}`);
    await shutdown();
    throw e;
  }
  learner.start();
  const startSlowPath = (): void => {
    try {
      if (slowPath.start() && slowPathWait) {
        clearInterval(slowPathWait);
        slowPathWait = null;
      }
    } catch (e) {
      log(`slow path unavailable: ${errorLine(e)}`);
    }
  };
  // IPVLAN_BPF_SLOWPATH=0: nothing is held, every frame is decided on the table as it is
  if (process.env.IPVLAN_BPF_SLOWPATH !== '0') {
    startSlowPath();
    if (!slowPath.running) slowPathWait = setInterval(startSlowPath, 500);
  }
  log('started');
  return new Promise<number>((resolve) => {
    const stop = (): void => {
      void shutdown().then(() => {
        log('stopped');
        resolve(0);
      });
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
