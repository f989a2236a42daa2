// What `make soak` prints about its losses: each lost ping between stable hosts with its time,
// the soak events just before it and the stable agents' warnings around it, and a summary by
// the kind of soak event that preceded them, so that a failing run explains itself. Pure: the
// soak hands in its timeline, the agents' logs and the pings' lost requests.

/** Kinds of soak event, in the words of the summary; 'agent' is a line from an agent's log. */
export type SoakEventKind = 'join' | 'leave' | 'churn restart' | 'stable restart' | 'etcd restart' | 'note' | 'agent';

export interface SoakEvent {
  /** ms since the epoch */
  at: number;
  kind: SoakEventKind;
  /** e.g. "restart stable h2 (SIGKILL): agent started" */
  what: string;
}

export interface SoakLoss {
  /** "h1->h2" */
  pair: string;
  seq: number;
  /** When the lost request was sent (ms since the epoch). */
  at: number;
  note?: string;
}

export interface ExplainOptions {
  /** The soak's start, for "+123.4s" times. */
  startedAt: number;
  /** How far back an event counts as "just before" a loss. */
  windowMs?: number;
  /** Losses of one pair this close together are one incident. */
  gapMs?: number;
  /** How long after an incident an agent's log line still belongs to it (a loss is noticed late). */
  afterMs?: number;
}

/** Losses of one pair close together in time: one incident, explained once. */
export interface LossIncident {
  pair: string;
  first: SoakLoss;
  last: SoakLoss;
  count: number;
  notes: string[];
  /** Events in [first.at - windowMs, last.at + afterMs], oldest first. */
  before: SoakEvent[];
}

const DEFAULT_WINDOW_MS = 15_000;
const DEFAULT_GAP_MS = 2_000;
const DEFAULT_AFTER_MS = 1_000;

/** Groups losses into incidents (per pair, gaps under gapMs) and finds the events before each. */
export function lossIncidents(losses: readonly SoakLoss[], events: readonly SoakEvent[], opts: ExplainOptions): LossIncident[] {
  const windowMs = opts.windowMs ?? DEFAULT_WINDOW_MS;
  const gapMs = opts.gapMs ?? DEFAULT_GAP_MS;
  const sorted = [...losses].sort((a, b) => a.pair.localeCompare(b.pair) || a.at - b.at);
  const incidents: LossIncident[] = [];
  let cur: LossIncident | undefined;
  for (const l of sorted) {
    if (cur && cur.pair === l.pair && l.at - cur.last.at <= gapMs) {
      cur.last = l;
      cur.count++;
      if (l.note && !cur.notes.includes(l.note)) cur.notes.push(l.note);
      continue;
    }
    cur = { pair: l.pair, first: l, last: l, count: 1, notes: l.note ? [l.note] : [], before: [] };
    incidents.push(cur);
  }
  const afterMs = opts.afterMs ?? DEFAULT_AFTER_MS;
  const timeline = [...events].sort((a, b) => a.at - b.at);
  for (const i of incidents) i.before = timeline.filter((e) => e.at >= i.first.at - windowMs && e.at <= i.last.at + afterMs);
  return incidents.sort((a, b) => a.first.at - b.first.at);
}

/** "+123.4s" from the soak's start. */
export function sinceStart(at: number, startedAt: number): string {
  return `+${((at - startedAt) / 1000).toFixed(1)}s`;
}

/** "08:12:34.567", UTC: the agents' logs use the same clock. */
export function clock(at: number): string {
  return new Date(at).toISOString().slice(11, 23);
}

/** The lines that explain every loss, then a summary by preceding event kind; none when nothing was lost. */
export function explainLosses(losses: readonly SoakLoss[], events: readonly SoakEvent[], opts: ExplainOptions): string[] {
  const windowMs = opts.windowMs ?? DEFAULT_WINDOW_MS;
  const incidents = lossIncidents(losses, events, opts);
  if (incidents.length === 0) return [];
  const lines = [`lost pings between stable hosts, with the soak events in the ${windowMs / 1000} s before each:`];
  const byKind = new Map<string, number>();
  for (const i of incidents) {
    const seqs = i.count === 1 ? `icmp_seq=${i.first.seq}` : `icmp_seq=${i.first.seq}..${i.last.seq} (${i.count} lost)`;
    const notes = i.notes.length ? `  [${i.notes.join('; ')}]` : '';
    lines.push(`  ${i.pair} ${seqs} at ${sinceStart(i.first.at, opts.startedAt)} (${clock(i.first.at)} UTC)${notes}`);
    if (i.before.length === 0) lines.push('      (no soak event in the window)');
    for (const e of i.before) lines.push(`      ${((e.at - i.first.at) / 1000).toFixed(1).padStart(6)}s  ${clock(e.at)}  ${e.what}`);
    const last = [...i.before].reverse().find((e) => e.kind !== 'note' && e.kind !== 'agent' && e.at <= i.first.at);
    const kind = last ? last.kind : 'no event';
    byKind.set(kind, (byKind.get(kind) ?? 0) + i.count);
  }
  const total = incidents.reduce((n, i) => n + i.count, 0);
  const parts = [...byKind]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => (k === 'no event' ? `${n} with no event in the window` : `${n} after a ${k}`));
  lines.push(`  ${total} lost in ${incidents.length} incident(s), by the latest soak event before each: ${parts.join(', ')}`);
  return lines;
}

/** An agent's warnings and errors (JSON log lines) as timeline entries: "h2 agent warn: msg (key)". */
export function agentLogEvents(host: string, log: string): SoakEvent[] {
  const out: SoakEvent[] = [];
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    let e: { level?: unknown; time?: unknown; msg?: unknown; key?: unknown; err?: unknown };
    try {
      e = JSON.parse(line) as typeof e;
    } catch {
      continue;
    }
    if ((e.level !== 'warn' && e.level !== 'error') || typeof e.time !== 'string' || typeof e.msg !== 'string') continue;
    const at = Date.parse(e.time);
    if (!Number.isFinite(at)) continue;
    const detail = [typeof e.key === 'string' ? e.key : undefined, typeof e.err === 'string' ? e.err.slice(0, 120) : undefined].filter(Boolean);
    out.push({ at, kind: 'agent', what: `${host} agent ${e.level}: ${e.msg}${detail.length ? ` (${detail.join('; ')})` : ''}` });
  }
  return out;
}
