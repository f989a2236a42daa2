// subnet.env: Flannel's format, line order and atomic write (the CNI plugin and Docker's
// --bip read it; a half-written file would hand containers a wrong bridge address).
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { Cidr, Cidr6 } from '../alloc/cidr.js';

/** The IPv4 lines (network, subnet) are left out for an IPv6-only network, the IPv6 ones without IPv6. */
export interface SubnetEnv {
  network?: Cidr;
  subnet?: Cidr;
  ipv6Network?: Cidr6;
  ipv6Subnet?: Cidr6;
  mtu: number;
  ipMasq: boolean;
}

/** Flannel's lines in flannel's order; each subnet as its first address (the bridge's) with the prefix. */
export function formatSubnetEnv(env: SubnetEnv): string {
  let out = '';
  if (env.network && env.subnet) {
    out += `FLANNEL_NETWORK=${env.network}\nFLANNEL_SUBNET=${env.subnet.gateway}/${env.subnet.prefix}\n`;
  }
  if (env.ipv6Network && env.ipv6Subnet) {
    out += `FLANNEL_IPV6_NETWORK=${env.ipv6Network}\nFLANNEL_IPV6_SUBNET=${env.ipv6Subnet.gateway}/${env.ipv6Subnet.prefix}\n`;
  }
  return out + `FLANNEL_MTU=${env.mtu}\nFLANNEL_IPMASQ=${env.ipMasq}\n`;
}

/** VXLAN's overhead on an IPv4 underlay (20 IP + 8 UDP + 8 VXLAN + 14 inner Ethernet), and on IPv6 (40 IP). */
export const VXLAN_OVERHEAD = { 4: 50, 6: 70 } as const;

/**
 * The MTU of one stack's overlay: vxlan = the underlay MTU (the configured backend.mtu, as
 * flanneld's Backend.MTU, else the uplink's) less the encapsulation overhead of the underlay
 * family; host-gw = the uplink's. FLANNEL_MTU is the smaller of the stacks' MTUs, so one value
 * suits every container interface.
 */
export function overlayMtu(backend: { type: string; mtu?: number }, uplinkMtu: number, underlay: 4 | 6): number {
  if (backend.type !== 'vxlan') return uplinkMtu;
  return (backend.mtu ?? uplinkMtu) - VXLAN_OVERHEAD[underlay];
}

/**
 * Reads FLANNEL_SUBNET and FLANNEL_IPV6_SUBNET from an existing file: the subnets this host
 * held before (host bits masked off). Undefined when the file is absent or names neither.
 */
export function readPreviousSubnets(path: string): { ipv4?: Cidr; ipv6?: Cidr6 } | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const v4 = /^FLANNEL_SUBNET=(\S+)$/m.exec(text);
  const v6 = /^FLANNEL_IPV6_SUBNET=(\S+)$/m.exec(text);
  const ipv4 = v4 ? Cidr.parse(v4[1]) : undefined;
  const ipv6 = v6 ? Cidr6.parse(v6[1]) : undefined;
  if (!ipv4 && !ipv6) return undefined;
  return { ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}) };
}

/**
 * Writes the file atomically (temp file in the same directory, fsync, rename, mode 0644),
 * only when the content differs. Returns whether it wrote.
 */
export function writeSubnetEnv(path: string, content: string): boolean {
  try {
    if (readFileSync(path, 'utf8') === content) return false;
  } catch {
    // absent or unreadable: write it
  }
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  // A random name, created exclusively and never through a symlink: the directory may be
  // writable by others (a shared /run), and a predictable name would let them plant a link
  // that makes us overwrite any file.
  const tmp = join(dir, `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    try {
      fchmodSync(fd, 0o644); // the umask may have narrowed it; on the descriptor, not the name
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  try {
    const dfd = openSync(dir, 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    // directory fsync is best-effort (not supported on every filesystem)
  }
  return true;
}
