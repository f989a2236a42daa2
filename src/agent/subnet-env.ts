// subnet.env: Flannel's format, line order and atomic write (the CNI plugin and Docker's
// --bip read it; a half-written file would hand containers a wrong bridge address).
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync, chmodSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { Cidr } from '../alloc/cidr.js';

export interface SubnetEnv {
  network: Cidr;
  subnet: Cidr;
  mtu: number;
  ipMasq: boolean;
}

export function formatSubnetEnv(env: SubnetEnv): string {
  return (
    `FLANNEL_NETWORK=${env.network}\n` +
    `FLANNEL_SUBNET=${env.subnet.gateway}/${env.subnet.prefix}\n` +
    `FLANNEL_MTU=${env.mtu}\n` +
    `FLANNEL_IPMASQ=${env.ipMasq}\n`
  );
}

/** Reads FLANNEL_SUBNET from an existing file: the subnet this host held before. */
export function readPreviousSubnet(path: string): Cidr | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const m = /^FLANNEL_SUBNET=(\S+)$/m.exec(text);
  return m ? Cidr.parse(m[1]) : undefined;
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
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, 0o644); // the umask may have narrowed it
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
