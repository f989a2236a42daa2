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
 *
 * The plan's first `ip` group (route deletes, neighbour replaces) and the `bridge` group after
 * it touch disjoint kernel objects, so they run side by side: an added or removed peer then
 * waits for two process lifetimes instead of three. Everything after waits for both.
 */
export async function execute(runner: IpRunner, ops: Op[]): Promise<ExecResult> {
  const ok = new Array<boolean>(ops.length).fill(false);
  const errors: string[] = [];
  const refusedBefore = new Array<boolean>(ops.length).fill(false);
  let runs = 0;

  const groups: { tool: Tool; start: number; end: number }[] = [];
  for (let start = 0; start < ops.length; ) {
    const tool = toolFor(ops[start]!);
    let end = start;
    while (end < ops.length && toolFor(ops[end]!) === tool) end++;
    groups.push({ tool, start, end });
    start = end;
  }

  const runGroup = async ({ tool, start, end }: { tool: Tool; start: number; end: number }): Promise<void> => {
    const refused = dependsOnRefused(ops, (i) => refusedBefore[i]!);
    const idx: number[] = [];
    const lines: string[] = [];
    for (let i = start; i < end; i++) {
      const op = ops[i]!;
      if (refused(op)) continue;
      idx.push(i);
      lines.push(renderOp(op));
    }
    if (lines.length === 0) return;
    const r = await runner.batch(tool, lines);
    runs++;
    errors.push(...r.errors);
    idx.forEach((opIndex, j) => {
      ok[opIndex] = r.ok[j] ?? false;
      refusedBefore[opIndex] = !ok[opIndex];
    });
  };

  let g = 0;
  const first = groups[0];
  const second = groups[1];
  if (first && second && first.tool === 'ip' && second.tool === 'bridge' && !hasRouteReplace(ops, first)) {
    await Promise.all([runGroup(first), runGroup(second)]);
    g = 2;
  }
  for (; g < groups.length; g++) await runGroup(groups[g]!);
  return { ok, failures: ok.filter((x) => !x).length, runs, errors: errors.slice(0, 5) };
}

/**
 * A rule for the ops still to run: an onlink route replace is left out when, earlier in the
 * same plan, the neighbour it goes via or the FDB entry for that neighbour's MAC was refused
 * (`refused(i)` for ops[i]). A route to a peer the kernel cannot encapsulate for would only
 * make it ARP into the overlay.
 */
export function dependsOnRefused(ops: readonly Op[], refused: (i: number) => boolean): (op: Op) => boolean {
  const failedNeigh = new Set<string>();
  const failedMacs = new Set<string>();
  const neighMac = new Map<string, string>();
  ops.forEach((op, i) => {
    if (op.action !== 'replace') return;
    if (op.kind === 'neigh') neighMac.set(op.key, op.entry.mac);
    if (!refused(i)) return;
    if (op.kind === 'neigh') failedNeigh.add(op.key);
    if (op.kind === 'fdb') failedMacs.add(op.entry.mac);
  });
  return (op) => {
    if (op.kind !== 'route' || op.action !== 'replace' || !op.entry.onlink) return false;
    const via = op.entry.via?.toString() ?? '';
    const mac = neighMac.get(via);
    return failedNeigh.has(via) || (mac !== undefined && failedMacs.has(mac));
  };
}

/** A route replace must wait for the FDB entries it relies on (never the case in plan order). */
function hasRouteReplace(ops: Op[], group: { start: number; end: number }): boolean {
  for (let i = group.start; i < group.end; i++) {
    const op = ops[i]!;
    if (op.kind === 'route' && op.action === 'replace') return true;
  }
  return false;
}
