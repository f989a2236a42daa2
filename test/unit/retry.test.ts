// The agent's one backoff policy, and untilDone (the etcd-outage retry loop). Pure: waits are injected.
import { describe, expect, it } from 'vitest';
import { Backoff, RETRY } from '../../src/backoff.js';
import { untilDone, type ErrorVerdict } from '../../src/agent/retry.js';

describe('Backoff', () => {
  it('doubles from the first delay to the maximum, each drawn in [delay/2, delay)', () => {
    const b = new Backoff({ firstMs: 100, maxMs: 1000 });
    const delays = Array.from({ length: 8 }, () => b.next());
    const bases = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
    delays.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(bases[i]! / 2);
      expect(d).toBeLessThan(bases[i]!);
    });
    expect(b.failures).toBe(8);
    b.reset();
    expect(b.failures).toBe(0);
    expect(b.next()).toBeLessThan(100);
  });

  it('names one range per kind of work, each starting below its maximum', () => {
    for (const r of Object.values(RETRY)) expect(r.firstMs).toBeLessThan(r.maxMs);
  });
});

describe('untilDone', () => {
  const log = () => {
    const lines: string[] = [];
    return { lines, log: { warn: (m: string) => lines.push(`warn ${m}`), info: (m: string) => lines.push(`info ${m}`) } };
  };
  /** Stands for an unavailable etcd (the agent's classifier says which errors are). */
  class Down extends Error {}
  const classify = (err: unknown): ErrorVerdict => (err instanceof Down ? { retry: true, transient: true } : { retry: false, error: err as Error });

  it('retries an outage with growing waits, logging its start and end once', async () => {
    const { lines, log: l } = log();
    const waits: number[] = [];
    let calls = 0;
    const out = await untilDone(
      async () => {
        if (++calls < 4) throw new Down('down');
        return 'ok';
      },
      { what: 'lease', log: l, classify, stopped: () => false, wait: async (ms) => void waits.push(ms) },
    );
    expect(out).toBe('ok');
    expect(waits).toHaveLength(3);
    expect(waits[2]!).toBeGreaterThanOrEqual(RETRY.etcd.firstMs * 2);
    expect(lines).toEqual(['warn etcd unavailable (lease); retrying with backoff', 'info etcd reachable again (lease)']);
  });

  it('gives up on an error that is not retryable, and stops when told', async () => {
    const { log: l } = log();
    await expect(untilDone(async () => Promise.reject(new Error('bad')), { what: 'x', log: l, classify, stopped: () => false, wait: async () => {} })).rejects.toThrow('bad');
    let stopped = false;
    const out = await untilDone(
      async () => {
        stopped = true;
        return undefined; // not there yet
      },
      { what: 'x', log: l, classify, stopped: () => stopped, wait: async () => {} },
    );
    expect(out).toBeUndefined();
  });
});
