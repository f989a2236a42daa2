// Rendering operations to iproute2 batch lines, and running a plan in as few processes as its
// order allows. Lines are built only from typed values (Cidr, Ipv4, Mac, LinkName, numbers),
// each validated when it was created, never from raw strings.
import type { IpRunner, Tool } from './ipcmd.js';
import type { Op } from './planner.js';

export function toolFor(op: Op): Tool {
  return op.kind === 'fdb' ? 'bridge' : 'ip';
}

/** One batch line (without the leading `ip` / `bridge`). */
export function renderOp(op: Op): string {
  switch (op.kind) {
    case 'route': {
      const r = op.entry;
      const words = ['route', op.action, r.dst.toString()];
      if (op.action === 'replace' && r.via) words.push('via', r.via.toString());
      words.push('dev', r.dev);
      if (op.action === 'replace' && r.onlink) words.push('onlink');
      if (r.proto !== undefined) words.push('proto', String(r.proto));
      if (r.metric !== 0) words.push('metric', String(r.metric));
      return words.join(' ');
    }
    case 'neigh': {
      const n = op.entry;
      return op.action === 'replace'
        ? `neigh replace ${n.ip.toString()} lladdr ${n.mac} dev ${n.dev} nud permanent`
        : `neigh del ${n.ip.toString()} dev ${n.dev}`;
    }
    case 'fdb': {
      const f = op.entry;
      return op.action === 'replace'
        ? `fdb replace ${f.mac} dev ${f.dev} dst ${f.dst.toString()} self permanent`
        : `fdb del ${f.mac} dev ${f.dev} dst ${f.dst.toString()} self`;
    }
  }
}

export interface ExecResult {
  /** ok[i] for ops[i]: applied. False when refused, skipped, or possibly not run. */
  ok: boolean[];
  failures: number;
  /** Batch processes started. */
  runs: number;
  /** A few error lines from iproute2, for logs. */
  errors: string[];
}

/**
 * Runs the plan: consecutive operations on the same tool go to one `-force -batch -` process,
 * in plan order. A route replace is not attempted when, in the same plan, the neighbour or FDB
 * entry it relies on was refused: a route to a peer we cannot encapsulate for would only make
 * the kernel ARP into the overlay.
 */
export async function execute(runner: IpRunner, ops: Op[]): Promise<ExecResult> {
  const ok = new Array<boolean>(ops.length).fill(false);
  const errors: string[] = [];
  const failedNeigh = new Set<string>(); // neighbour IPs refused in this plan
  const failedMacs = new Set<string>();
  const neighMac = new Map<string, string>(); // neighbour IP -> MAC, from this plan's replaces
  for (const op of ops) if (op.kind === 'neigh' && op.action === 'replace') neighMac.set(op.key, op.entry.mac);
  let runs = 0;

  let start = 0;
  while (start < ops.length) {
    const tool = toolFor(ops[start]!);
    let end = start;
    while (end < ops.length && toolFor(ops[end]!) === tool) end++;
    const idx: number[] = [];
    const lines: string[] = [];
    for (let i = start; i < end; i++) {
      const op = ops[i]!;
      if (op.kind === 'route' && op.action === 'replace' && op.entry.onlink) {
        const via = op.entry.via?.toString() ?? '';
        const mac = neighMac.get(via);
        if (failedNeigh.has(via) || (mac !== undefined && failedMacs.has(mac))) continue;
      }
      idx.push(i);
      lines.push(renderOp(op));
    }
    if (lines.length > 0) {
      const r = await runner.batch(tool, lines);
      runs++;
      errors.push(...r.errors);
      idx.forEach((opIndex, j) => {
        ok[opIndex] = r.ok[j] ?? false;
        const op = ops[opIndex]!;
        if (ok[opIndex] || op.action !== 'replace') return;
        if (op.kind === 'neigh') failedNeigh.add(op.key);
        if (op.kind === 'fdb') failedMacs.add(op.entry.mac);
      });
    }
    start = end;
  }
  return { ok, failures: ok.filter((x) => !x).length, runs, errors: errors.slice(0, 5) };
}
