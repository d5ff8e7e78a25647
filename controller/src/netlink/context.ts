// SPDX-License-Identifier: GPL-2.0-only
/**
 * The process works from the init namespace and names every other namespace
 * explicitly (ip -n NAME), so that a command started with `ip netns exec` or
 * `nsenter --net` behaves like one given `-n`. setns affects the calling
 * thread only: the main thread, which makes every synchronous libbpf call and
 * forks every child process.
 */
import { setns } from '../../../native/libbpf.js';
import { currentNetnsInode, initNetnsInode, initNetnsPath } from './netns.js';

export function enterInitNetns(): void {
  if (currentNetnsInode() !== initNetnsInode()) setns(initNetnsPath());
}
