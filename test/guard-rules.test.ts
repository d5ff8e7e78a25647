// SPDX-License-Identifier: GPL-2.0-only
/*
 * The netlink guard's decisions (bpf/lib/guard_rules.h), run with
 * BPF_PROG_TEST_RUN through bpf/guard_rules_test.bpf.c on real rtnetlink
 * requests built byte by byte as iproute2 sends them: the same code the BPF
 * LSM hook runs, on kernels that refuse LSM programs too. Each case's
 * expectation is the kernel driver's errno for that request (oracle records,
 * ../shared/docs/ipvlan-semantics.md; the macvlan cases are macvlan_port_create
 * and netdev_rx_handler_register). test/vm-guard.test.ts makes the same
 * requests with `ip` against the loaded LSM program in the 6.12 VM.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { BpfObject, mapUpdate, progTestRun } from '../native/libbpf.js';
import { addrKeyOf } from '../controller/src/bpf/addr-key.js';
import { encodeIvbAddrOwner, encodeIvbGuardEntry, encodeIvbGuardKey } from '../maps/generated.js';
import { makePinRoot, removePinRoot, repoRoot } from './lib/bpfprog.js';

const RTM_NEWLINK = 16;
const RTM_SETLINK = 19;
const RTM_NEWADDR = 20;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_LINK_NETNSID = 37;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const NLA_F_NESTED = 0x8000;
const AF_INET = 2;
const AF_INET6 = 10;
const EBUSY = 16;
const EINVAL = 22;
const EOPNOTSUPP = 95;
const EADDRINUSE = 98;

// the scene: one port (7) with its master in netns A and two slaves, each in its own netns
const PORT = 7;
const NS_MASTER = 4026530101;
const NS_S1 = 4026530102;
const NS_S2 = 4026530103;
const NS_OTHER = 4026530104;
const MASTER_IFINDEX = 10;
const SLAVE_IFINDEX = 3; // both slaves are ifindex 3 in their own namespaces
const S1_PEER = 101;
const S2_PEER = 102;
const BRIDGE_IFINDEX = 20;
const S1_V4 = Buffer.from([198, 18, 0, 10]);
const S1_V6 = Buffer.from('20010db8000000000000000000000010', 'hex');

function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const str = (s: string): Buffer => Buffer.from(`${s}\0`);

function nlmsg(type: number, body: Buffer, attrs: Buffer[]): Buffer {
  const payload = Buffer.concat([body, ...attrs]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + payload.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(0x0005, 6); // NLM_F_REQUEST | NLM_F_ACK, as ip sends (plus CREATE/EXCL on adds)
  h.writeUInt32LE(1, 8);
  return Buffer.concat([h, payload]);
}

function ifaddrmsg(family: number, prefixlen: number, index: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(family, 0);
  b.writeUInt8(prefixlen, 1);
  b.writeUInt32LE(index, 4);
  return b;
}

function ifinfomsg(index: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(index, 4);
  return b;
}

/** `ip addr add ADDR/P dev IFINDEX`: iproute2 sends IFA_LOCAL and IFA_ADDRESS */
function addrAdd(index: number, addr: Buffer, opts: { localAttr?: boolean } = {}): Buffer {
  const v6 = addr.length === 16;
  const attrs = opts.localAttr === false ? [attr(IFA_ADDRESS, addr)] : [attr(IFA_LOCAL, addr), attr(IFA_ADDRESS, addr)];
  return nlmsg(RTM_NEWADDR, ifaddrmsg(v6 ? AF_INET6 : AF_INET, v6 ? 64 : 24, index), attrs);
}

/** `ip link set dev IFINDEX ...` */
function linkSet(index: number, attrs: Buffer[]): Buffer {
  return nlmsg(RTM_NEWLINK, ifinfomsg(index), attrs);
}

/**
 * `ip link add link LOWER name NAME type KIND`: iproute2 sends the kind
 * without its NUL (attribute length 4 + 7 for "macvlan", then padding);
 * libmnl's strz and pyroute2 send it with the NUL
 */
function linkAdd(lower: number, kind: string, extra: Buffer[] = [], nestedFlag = 0, kindNul = false, pad = 0): Buffer {
  const kindAttr = attr(IFLA_INFO_KIND, kindNul ? str(kind) : Buffer.from(kind));
  if (!kindNul && kindAttr.length > 4 + kind.length) kindAttr.fill(pad, 4 + kind.length);
  const info = Buffer.concat([kindAttr, attr(IFLA_INFO_DATA | NLA_F_NESTED, Buffer.alloc(0))]);
  return nlmsg(RTM_NEWLINK, ifinfomsg(0), [
    attr(IFLA_LINK, u32(lower)),
    attr(IFLA_IFNAME, str('upper0')),
    ...extra,
    attr(IFLA_LINKINFO | nestedFlag, info),
  ]);
}

const MAC = Buffer.from('020000000077', 'hex');

let pinRoot = '';
const judges = new Map<number, { obj: BpfObject; fd: number }>();

/** The guard's answer to MSG sent from a socket in netns NS: 0 or -errno. */
function decide(ns: number, msg: Buffer): number {
  const j = judges.get(ns);
  if (!j) throw new Error(`no judge for netns ${ns}`);
  return progTestRun(j.fd, { data: msg }).retval;
}

describe('netlink guard rules (BPF_PROG_TEST_RUN of lib/guard_rules.h)', () => {
  beforeAll(() => {
    pinRoot = makePinRoot(`ivb-guard-unit-${process.pid}`);
    // one instance per namespace a request is judged in (the inode is .rodata)
    for (const ns of [NS_MASTER, NS_S1, NS_S2, NS_OTHER]) {
      const obj = BpfObject.open(path.join(repoRoot, 'bpf', 'guard_rules_test.bpf.o'), { pinRoot });
      const ino = Buffer.alloc(4);
      ino.writeUInt32LE(ns);
      obj.setRodata('ivb_guard_test_netns_ino', ino);
      obj.load();
      judges.set(ns, { obj, fd: obj.programFd('ivb_guard_rules_test') });
    }
    const any = judges.get(NS_MASTER)!.obj;
    const guard = any.mapFd('ivb_guard');
    mapUpdate(guard, encodeIvbGuardKey({ netnsIno: NS_MASTER, ifindex: MASTER_IFINDEX }), encodeIvbGuardEntry({ portId: PORT, peerIfindex: 0 }));
    mapUpdate(guard, encodeIvbGuardKey({ netnsIno: NS_S1, ifindex: SLAVE_IFINDEX }), encodeIvbGuardEntry({ portId: PORT, peerIfindex: S1_PEER }));
    mapUpdate(guard, encodeIvbGuardKey({ netnsIno: NS_S2, ifindex: SLAVE_IFINDEX }), encodeIvbGuardEntry({ portId: PORT, peerIfindex: S2_PEER }));
    for (const [family, a] of [[4, S1_V4], [6, S1_V6]] as const) {
      const addr = Buffer.alloc(16);
      a.copy(addr);
      const k = addrKeyOf(PORT, family, addr);
      mapUpdate(any.mapFd(k.map), k.key, encodeIvbAddrOwner({ peerIfindex: S1_PEER, prefixlen: family === 4 ? 24 : 64 }));
    }
  });

  afterAll(() => {
    for (const j of judges.values()) j.obj.close();
    if (pinRoot) removePinRoot(pinRoot);
  });

  describe('addresses (ipvlan address validators)', () => {
    it('another slave of the port owns it: EADDRINUSE (dup_addr_other_slave v4)', () => {
      expect(decide(NS_S2, addrAdd(SLAVE_IFINDEX, S1_V4))).toBe(-EADDRINUSE);
    });
    it('the same for v6, also with IFA_ADDRESS alone', () => {
      expect(decide(NS_S2, addrAdd(SLAVE_IFINDEX, S1_V6))).toBe(-EADDRINUSE);
      expect(decide(NS_S2, addrAdd(SLAVE_IFINDEX, S1_V6, { localAttr: false }))).toBe(-EADDRINUSE);
    });
    it('the owner adds it again: accepted (readd_same_addr_same_slave)', () => {
      expect(decide(NS_S1, addrAdd(SLAVE_IFINDEX, S1_V4))).toBe(0);
      expect(decide(NS_S1, addrAdd(SLAVE_IFINDEX, S1_V6))).toBe(0);
    });
    it("the master takes a slave's address: accepted, the validators are ipvlan's (slave_addr_on_master)", () => {
      expect(decide(NS_MASTER, addrAdd(MASTER_IFINDEX, S1_V4))).toBe(0);
      expect(decide(NS_MASTER, addrAdd(MASTER_IFINDEX, S1_V6))).toBe(0);
    });
    it('a free address on a slave: accepted', () => {
      expect(decide(NS_S2, addrAdd(SLAVE_IFINDEX, Buffer.from([198, 18, 0, 11])))).toBe(0);
    });
    it('the same ifindex in a namespace where it is not ours: accepted', () => {
      expect(decide(NS_OTHER, addrAdd(SLAVE_IFINDEX, S1_V4))).toBe(0);
    });
  });

  describe('link changes', () => {
    it('a slave MAC change: EOPNOTSUPP (mac_change_slave)', () => {
      expect(decide(NS_S1, linkSet(SLAVE_IFINDEX, [attr(IFLA_ADDRESS, MAC)]))).toBe(-EOPNOTSUPP);
      expect(decide(NS_S1, nlmsg(RTM_SETLINK, ifinfomsg(SLAVE_IFINDEX), [attr(IFLA_ADDRESS, MAC)]))).toBe(-EOPNOTSUPP);
    });
    it('a slave enslaved to a bridge or bond: EINVAL (IFF_NO_RX_HANDLER)', () => {
      expect(decide(NS_S1, linkSet(SLAVE_IFINDEX, [attr(IFLA_MASTER, u32(BRIDGE_IFINDEX))]))).toBe(-EINVAL);
    });
    it('a slave set nomaster, or its MTU changed: accepted', () => {
      expect(decide(NS_S1, linkSet(SLAVE_IFINDEX, [attr(IFLA_MASTER, u32(0))]))).toBe(0);
      expect(decide(NS_S1, linkSet(SLAVE_IFINDEX, [attr(IFLA_MTU, u32(1400))]))).toBe(0);
    });
    it('a master with slaves enslaved to a bridge: EBUSY (global_enslave_master_to_bridge)', () => {
      expect(decide(NS_MASTER, linkSet(MASTER_IFINDEX, [attr(IFLA_MASTER, u32(BRIDGE_IFINDEX))]))).toBe(-EBUSY);
    });
    it("the master's MAC change: accepted, the slaves follow (mac_change_master)", () => {
      expect(decide(NS_MASTER, linkSet(MASTER_IFINDEX, [attr(IFLA_ADDRESS, MAC)]))).toBe(0);
    });
  });

  describe('new devices on ours (macvlan_port_create)', () => {
    it('a macvlan on a slave: EINVAL', () => {
      expect(decide(NS_S1, linkAdd(SLAVE_IFINDEX, 'macvlan'))).toBe(-EINVAL);
    });
    it('the kind with its NUL, or with dirty padding after it, is the same kind', () => {
      expect(decide(NS_S1, linkAdd(SLAVE_IFINDEX, 'macvlan', [], 0, true))).toBe(-EINVAL);
      expect(decide(NS_S1, linkAdd(SLAVE_IFINDEX, 'macvlan', [], 0, false, 0x5a))).toBe(-EINVAL);
      expect(decide(NS_S1, linkAdd(SLAVE_IFINDEX, 'macvlanx'))).toBe(0);
      expect(decide(NS_S1, linkAdd(SLAVE_IFINDEX, 'macvla'))).toBe(0);
    });
    it('a macvlan or macvtap on a master that has slaves: EBUSY', () => {
      expect(decide(NS_MASTER, linkAdd(MASTER_IFINDEX, 'macvlan'))).toBe(-EBUSY);
      expect(decide(NS_MASTER, linkAdd(MASTER_IFINDEX, 'macvtap'))).toBe(-EBUSY);
      expect(decide(NS_MASTER, linkAdd(MASTER_IFINDEX, 'macvlan', [], NLA_F_NESTED))).toBe(-EBUSY);
    });
    it('a vlan on a master, or a macvlan on a device that is not ours: accepted', () => {
      expect(decide(NS_MASTER, linkAdd(MASTER_IFINDEX, 'vlan'))).toBe(0);
      expect(decide(NS_MASTER, linkAdd(BRIDGE_IFINDEX, 'macvlan'))).toBe(0);
      expect(decide(NS_OTHER, linkAdd(MASTER_IFINDEX, 'macvlan'))).toBe(0);
    });
    it('a lower device named in another namespace (IFLA_LINK_NETNSID) is not judged', () => {
      expect(decide(NS_MASTER, linkAdd(MASTER_IFINDEX, 'macvlan', [attr(IFLA_LINK_NETNSID, u32(1))]))).toBe(0);
    });
  });

  describe('malformed requests pass to the kernel, which answers them', () => {
    it('a length beyond the data, a truncated header, a zero-length attribute', () => {
      const long = addrAdd(SLAVE_IFINDEX, S1_V4);
      long.writeUInt32LE(long.length + 64, 0);
      expect(decide(NS_S2, long)).toBe(0);
      expect(decide(NS_S2, addrAdd(SLAVE_IFINDEX, S1_V4).subarray(0, 20))).toBe(0);
      const zero = nlmsg(RTM_NEWADDR, ifaddrmsg(AF_INET, 24, SLAVE_IFINDEX), [Buffer.alloc(8)]);
      expect(decide(NS_S2, zero)).toBe(0);
    });
  });
});
