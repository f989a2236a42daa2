// The only place weft runs iproute2. Arguments are passed as arrays (never a shell string);
// batch input is built by callers from values already validated as IPs, CIDRs or MACs.
import { execa } from 'execa';

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function run(cmd: 'ip' | 'bridge', args: string[], input?: string): Promise<CommandResult> {
  const r = await execa(cmd, args, { reject: false, input: input ?? '', stripFinalNewline: false });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
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

/** Runs `ip -json ...` (or `bridge -json ...`) and parses its output. */
export async function json<T>(cmd: 'ip' | 'bridge', args: string[]): Promise<T> {
  const r = await run(cmd, ['-json', ...args]);
  if (r.exitCode !== 0) throw new CommandError(`${cmd} -json ${args.join(' ')}`, r);
  const text = r.stdout.trim();
  return (text ? JSON.parse(text) : []) as T;
}

export async function mustRun(cmd: 'ip' | 'bridge', args: string[]): Promise<CommandResult> {
  const r = await run(cmd, args);
  if (r.exitCode !== 0) throw new CommandError(`${cmd} ${args.join(' ')}`, r);
  return r;
}
