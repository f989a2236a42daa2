// The kernel watch's rtmon must not outlive its agent, even a SIGKILLed one. The watcher runs
// in a fresh namespace where nothing changes, so no notification can end rtmon by SIGPIPE:
// only the parent-death signal (setpriv --pdeathsig) can take it down within the deadline.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { poll } from '../../src/testbed/poll.js';
import { withNetns } from '../helpers/netns.js';

const WATCH_MODULE = fileURLToPath(new URL('../../dist/dataplane/kernel-watch.js', import.meta.url));

/** A process that holds a KernelWatch and nothing else, like an agent would. */
const WATCHER = `
const { KernelWatch } = await import(process.argv[1]);
const log = { debug() {}, info() {}, warn: (m) => console.error(m), error: (m) => console.error(m), child() { return log; } };
new KernelWatch({ message() {}, lost() {} }, log);
setInterval(() => {}, 1 << 30);
`;

describe('the kernel watch', () => {
  it('takes its rtmon with it when its process is SIGKILLed, without waiting for a notification', async () => {
    expect(existsSync(WATCH_MODULE), 'dist/ is built').toBe(true);
    await withNetns('watch', async (ns) => {
      const watcher = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '--input-type=module', '-e', WATCHER, WATCH_MODULE], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      let rtmon: number | undefined;
      try {
        await poll(() => (rtmon = rtmonChildrenOf(watcher.pid!)[0]) !== undefined, { what: 'the watcher to start rtmon' });
        watcher.kill('SIGKILL');
        await poll(() => !existsSync(`/proc/${rtmon}`), { timeoutMs: 3_000, what: `rtmon ${rtmon} gone after its parent's SIGKILL` });
      } finally {
        watcher.kill('SIGKILL');
        if (rtmon !== undefined && existsSync(`/proc/${rtmon}`)) process.kill(rtmon, 'SIGKILL');
      }
    });
  });
});

/** rtmon processes whose parent is pid (read from /proc). */
function rtmonChildrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces, so read after its closing parenthesis.
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (comm === 'rtmon' && ppid === pid) found.push(Number(entry));
  }
  return found;
}
