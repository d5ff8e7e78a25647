// SPDX-License-Identifier: GPL-2.0-only
/**
 * Typed errors with stable codes (IPVLAN_E_*): the CLI prints them as one
 * line and exits non-zero; programs that import the library can switch on
 * `code` instead of parsing messages.
 */
export type IvbErrorCode =
  | 'IPVLAN_E_USAGE'
  | 'IPVLAN_E_NO_DEVICE'
  | 'IPVLAN_E_BAD_MASTER'
  | 'IPVLAN_E_BUSY'
  | 'IPVLAN_E_EXISTS'
  | 'IPVLAN_E_NAME'
  | 'IPVLAN_E_MODE'
  | 'IPVLAN_E_FLAG'
  | 'IPVLAN_E_NOT_IPVLAN'
  | 'IPVLAN_E_NETNS'
  | 'IPVLAN_E_IPROUTE'
  | 'IPVLAN_E_BPF'
  | 'IPVLAN_E_STATE'
  | 'IPVLAN_E_LOCK'
  | 'IPVLAN_E_AGENT';

export class IvbError extends Error {
  override readonly name = 'IvbError';
  readonly code: IvbErrorCode;
  /** errno-style number where the kernel driver would have returned one (EINVAL, EBUSY, ...) */
  readonly errno: number | undefined;

  constructor(code: IvbErrorCode, message: string, errno?: number) {
    super(message);
    this.code = code;
    this.errno = errno;
  }
}

export const ENOENT = 2;
export const ESRCH = 3;
export const EINVAL = 22;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const EOPNOTSUPP = 95;
export const EADDRINUSE = 98;
export const EADDRNOTAVAIL = 99;
export const ENETDOWN = 100;

/** Any thrown value as one line of text. */
export function errorLine(e: unknown): string {
  if (e instanceof Error) return e.message.split('\n')[0] ?? e.message;
  return String(e);
}

/** Whether E is a system error (fs, process.kill) with one of these codes: the named conditions a caller handles. */
export function isSysError(e: unknown, ...codes: readonly string[]): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && codes.includes(code);
}

/** Whether E is an IvbError with one of these codes. */
export function isIvbError(e: unknown, ...codes: readonly IvbErrorCode[]): e is IvbError {
  return e instanceof IvbError && codes.includes(e.code);
}
