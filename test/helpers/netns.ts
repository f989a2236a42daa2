// A throwaway network namespace per test file: uniquely named from the process id and some
// randomness, lo up, deleted afterwards (also when the test failed). Commands run inside it
// through an IpRunner bound to the namespace, never in the machine's own namespace.
import { execa } from 'execa';
import { IpRunner } from '../../src/dataplane/ipcmd.js';

export interface TestNetns {
  name: string;
  /** Runs iproute2 inside the namespace. */
  runner: IpRunner;
  /** `ip -n NAME ARGS...`; throws on a non-zero exit. */
  ip(args: string[]): Promise<string>;
  /** `ip -n NAME -json ARGS...`, parsed. */
  ipJson<T = unknown>(args: string[]): Promise<T>;
  /** `bridge -n NAME -json ARGS...`, parsed. */
  bridgeJson<T = unknown>(args: string[]): Promise<T>;
  delete(): Promise<void>;
}

export function uniqueName(role: string): string {
  const rand = Math.floor(Math.random() * 36 ** 4).toString(36);
  return `weft-k${process.pid.toString(36)}${rand}-${role}`.slice(0, 40);
}

export async function createTestNetns(role: string): Promise<TestNetns> {
  const name = uniqueName(role);
  await execa('ip', ['netns', 'add', name]);
  const ip = async (args: string[]) => String((await execa('ip', ['-n', name, ...args])).stdout);
  const parsed = async (cmd: 'ip' | 'bridge', args: string[]) => {
    const out = String((await execa(cmd, ['-n', name, '-json', ...args])).stdout).trim();
    return out ? JSON.parse(out) : [];
  };
  const ns: TestNetns = {
    name,
    runner: new IpRunner({ netns: name }),
    ip,
    ipJson: (args) => parsed('ip', args),
    bridgeJson: (args) => parsed('bridge', args),
    delete: async () => {
      await execa('ip', ['netns', 'del', name], { reject: false });
    },
  };
  try {
    await ip(['link', 'set', 'lo', 'up']);
  } catch (err) {
    await ns.delete();
    throw err;
  }
  return ns;
}

/** Runs fn with a fresh namespace and deletes it afterwards, whatever happens. */
export async function withNetns<T>(role: string, fn: (ns: TestNetns) => Promise<T>): Promise<T> {
  const ns = await createTestNetns(role);
  try {
    return await fn(ns);
  } finally {
    await ns.delete();
  }
}
