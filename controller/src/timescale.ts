// SPDX-License-Identifier: GPL-2.0-only
/**
 * IPVLAN_BPF_TIME_SCALE (a number ≥ 1, default 1) stretches the waits that
 * assume a machine of ordinary speed (the state lock, the demo's learner
 * wait) on slow ones: an emulated VM runs 5–10 times slower
 * (scripts/vm/run.sh sets 4 under TCG).
 */
export function timeScale(): number {
  const v = Number(process.env.IPVLAN_BPF_TIME_SCALE);
  return Number.isFinite(v) && v >= 1 ? v : 1;
}
