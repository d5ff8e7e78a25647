// SPDX-License-Identifier: GPL-2.0-only
/**
 * The thread that runs the API's `link add` / `link del` for the agent
 * (mutations.ts): everything they do is synchronous (netlink tools, the
 * state lock, program loads and verification), which must not stall the
 * agent's event loop, where the learner and the slow path run. Its own OS
 * thread has its own network namespace for setns (context.ts): it starts,
 * like the main thread, in the init namespace.
 */
import { parentPort } from 'node:worker_threads';
import { IvbError, errorLine } from '../errors.js';
import { linkAdd, linkDel } from '../link/manager.js';
import type { MutationReply, MutationRequest } from './mutations.js';

function reply(m: MutationReply): void {
  parentPort!.postMessage(m);
}

parentPort!.on('message', (req: MutationRequest) => {
  try {
    if (req.op === 'add') {
      const r = linkAdd(req.options);
      reply({ seq: req.seq, ok: { portId: r.port.portId, devId: r.slave.devId, peer: r.slave.peerName, peerIfindex: r.slave.peerIfindex } });
    } else {
      linkDel(req.name, req.netns);
      reply({ seq: req.seq, ok: null });
    }
  } catch (e) {
    const code = e instanceof IvbError ? e.code : (e as { code?: unknown }).code;
    reply({
      seq: req.seq,
      error: {
        code: typeof code === 'string' && code.startsWith('IPVLAN_E_') ? code : 'IPVLAN_E_AGENT',
        message: errorLine(e),
        errno: e instanceof IvbError ? (e.errno ?? 0) : 0,
      },
    });
  }
});
