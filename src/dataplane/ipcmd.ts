// The only place weft runs iproute2. Arguments are passed as arrays (never a shell string);
// batch input is built by callers from values already validated as IPs, CIDRs or MACs.
//
// An IpRunner optionally targets a network namespace (`ip -n NS`, `bridge -n NS`). The agent
// itself runs inside its host's namespace and uses the default runner (no namespace); tests
// construct a runner for a namespace they created. Every process start is counted, so tests
// can prove that kernel work happens in a handful of batches.
import { spawn } from 'node:child_process';

export type Tool = 'ip' | 'bridge';

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly command: string,
    readonly result: CommandResult,
  ) {
    super(`${command} failed (exit ${result.exitCode}): ${result.stderr.trim().split('\n').slice(0, 5).join('; ')}`);
  }
}

/** Outcome of one `-force -batch -` run, per input line (0-based indexes into the lines given). */
export interface BatchResult {
  /** ok[i] is false when line i failed or may not have run. */
  ok: boolean[];
  failures: number;
  /** The first few error lines, for logs. */
  errors: string[];
  exitCode: number;
}

const NETNS = /^[A-Za-z0-9_.-]{1,64}$/;

export class IpRunner {
  /** Number of iproute2 processes started by this runner. */
  runs = 0;
  readonly netns: string | undefined;

  constructor(opts: { netns?: string } = {}) {
    if (opts.netns !== undefined && (!NETNS.test(opts.netns) || opts.netns.startsWith('.'))) {
      throw new Error(`bad network namespace name ${JSON.stringify(opts.netns)}`);
    }
    this.netns = opts.netns;
  }

  async run(cmd: Tool, args: string[], input?: string): Promise<CommandResult> {
    const full = this.netns ? ['-n', this.netns, ...args] : args;
    this.runs++;
    return runProcess(cmd, full, input ?? '');
  }

  async mustRun(cmd: Tool, args: string[], input?: string): Promise<CommandResult> {
    const r = await this.run(cmd, args, input);
    if (r.exitCode !== 0) throw new CommandError(`${cmd} ${args.join(' ')}`, r);
    return r;
  }

  /** Runs `ip -json ...` (or `bridge -json ...`) and parses its output; the shape is unchecked. */
  async json(cmd: Tool, args: string[]): Promise<unknown> {
    const r = await this.run(cmd, ['-json', ...args]);
    if (r.exitCode !== 0) throw new CommandError(`${cmd} -json ${args.join(' ')}`, r);
    const text = r.stdout.trim();
    return text ? (JSON.parse(text) as unknown) : [];
  }

  /**
   * Feeds lines to `ip|bridge -force -batch -` in one process and maps failures back to lines.
   * Lines must come from typed, validated values; a line with a newline is refused here as a
   * last guard against one value smuggling in a second command.
   */
  async batch(cmd: Tool, lines: string[]): Promise<BatchResult> {
    if (lines.length === 0) return { ok: [], failures: 0, errors: [], exitCode: 0 };
    for (const line of lines) {
      if (/[\n\r\0]/.test(line)) throw new Error(`refusing a batch line with a line break: ${JSON.stringify(line)}`);
    }
    const r = await this.run(cmd, ['-force', '-batch', '-'], lines.join('\n') + '\n');
    return parseBatchOutcome(r, lines.length);
  }
}

/**
 * With `-force`, iproute2 prints `Command failed -:N` (N = 1-based input line) for each failed
 * line and exits 1 after the last line. Some refusals (a neighbour change the kernel rejects)
 * make `ip` exit at once with status 2 and no line number, silently skipping the rest: then
 * every line after the last reported failure is treated as not applied.
 */
export function parseBatchOutcome(r: CommandResult, count: number): BatchResult {
  const ok = new Array<boolean>(count).fill(true);
  let last = -1;
  for (const m of r.stderr.matchAll(/^Command failed -:(\d+)$/gm)) {
    const i = Number(m[1]) - 1;
    if (i >= 0 && i < count) {
      ok[i] = false;
      last = Math.max(last, i);
    }
  }
  const reported = last >= 0;
  const completed = r.exitCode === 0 || (r.exitCode === 1 && reported);
  if (!completed) for (let i = last + 1; i < count; i++) ok[i] = false;
  const errors = r.stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('Command failed'))
    .slice(0, 5);
  return { ok, failures: ok.filter((x) => !x).length, errors, exitCode: r.exitCode };
}

/**
 * One process, its input on stdin, its exit status and output; never throws (a command that
 * cannot start is exit -1 with the reason as stderr). Node's own spawn: the agent starts its
 * `ip` reads at start-up, where execa's per-call setup cost ~10 ms of CPU each.
 */
function runProcess(cmd: string, args: string[], input: string): Promise<CommandResult> {
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let done = false;
    const finish = (r: CommandResult) => {
      if (done) return;
      done = true;
      resolve(r);
    };
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    child.on('error', (e) => finish({ exitCode: -1, stdout: '', stderr: e.message }));
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('close', (code) => finish({ exitCode: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    child.stdin.on('error', () => {}); // EPIPE when the command exits before reading it all
    child.stdin.end(input);
  });
}

/** The runner for the namespace this process lives in (production). */
export const hostRunner = new IpRunner();

export async function run(cmd: Tool, args: string[], input?: string): Promise<CommandResult> {
  return hostRunner.run(cmd, args, input);
}

/** Runs `ip -json ...` (or `bridge -json ...`) in this process's namespace and parses its output. */
export async function json<T>(cmd: Tool, args: string[]): Promise<T> {
  return (await hostRunner.json(cmd, args)) as T;
}

export async function mustRun(cmd: Tool, args: string[]): Promise<CommandResult> {
  return hostRunner.mustRun(cmd, args);
}
