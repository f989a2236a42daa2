// What `make soak` prints about a loss: the pair, the time, and the soak events just before it.
import { describe, expect, it } from 'vitest';
import { agentLogEvents, explainLosses, lossIncidents, type SoakEvent, type SoakLoss } from '../../src/testbed/soak-report.js';

const T0 = Date.parse('2026-12-06T08:07:10.000Z');
const at = (s: number) => T0 + s * 1000;

const events: SoakEvent[] = [
  { at: at(100), kind: 'etcd restart', what: 'etcd restart: stopping' },
  { at: at(110), kind: 'etcd restart', what: 'etcd restart: serving again' },
  { at: at(120), kind: 'stable restart', what: 'restart stable h2 (SIGKILL)' },
  { at: at(150), kind: 'join', what: 'join h21' },
  { at: at(151.5), kind: 'note', what: 'a note' },
  { at: at(153.8), kind: 'agent', what: 'h2 agent warn: our lease was deleted; re-acquiring' },
];

describe('soak loss report', () => {
  it('groups losses of one pair that are close together, and finds the events before each group', () => {
    const losses: SoakLoss[] = [
      { pair: 'h1->h2', seq: 1361, at: at(153.7) },
      { pair: 'h2->h3', seq: 1361, at: at(153.6) },
      { pair: 'h1->h2', seq: 1360, at: at(153.6), note: 'From 10.5.17.0 Destination Host Unreachable' },
      { pair: 'h1->h2', seq: 1500, at: at(300) },
    ];
    const incidents = lossIncidents(losses, events, { startedAt: T0 });
    expect(incidents.map((i) => [i.pair, i.first.seq, i.last.seq, i.count])).toEqual([
      ['h1->h2', 1360, 1361, 2],
      ['h2->h3', 1361, 1361, 1],
      ['h1->h2', 1500, 1500, 1],
    ]);
    expect(incidents[0]!.notes).toEqual(['From 10.5.17.0 Destination Host Unreachable']);
    expect(incidents[0]!.before.map((e) => e.what)).toEqual(['join h21', 'a note', 'h2 agent warn: our lease was deleted; re-acquiring']);
    expect(incidents[2]!.before).toEqual([]);
  });

  it('prints each incident with its time and events, and a summary by the latest event before each', () => {
    const losses: SoakLoss[] = [
      { pair: 'h1->h2', seq: 1360, at: at(153.6) },
      { pair: 'h1->h2', seq: 1361, at: at(153.7) },
      { pair: 'h3->h1', seq: 1170, at: at(125) },
      { pair: 'h3->h1', seq: 4000, at: at(400) },
    ];
    const lines = explainLosses(losses, events, { startedAt: T0 });
    expect(lines).toEqual([
      'lost pings between stable hosts, with the soak events in the 15 s before each:',
      '  h3->h1 icmp_seq=1170 at +125.0s (08:09:15.000 UTC)',
      '       -15.0s  08:09:00.000  etcd restart: serving again',
      '        -5.0s  08:09:10.000  restart stable h2 (SIGKILL)',
      '  h1->h2 icmp_seq=1360..1361 (2 lost) at +153.6s (08:09:43.600 UTC)',
      '        -3.6s  08:09:40.000  join h21',
      '        -2.1s  08:09:41.500  a note',
      '         0.2s  08:09:43.800  h2 agent warn: our lease was deleted; re-acquiring',
      '  h3->h1 icmp_seq=4000 at +400.0s (08:13:50.000 UTC)',
      '      (no soak event in the window)',
      '  4 lost in 3 incident(s), by the latest soak event before each: 2 after a join, 1 after a stable restart, 1 with no event in the window',
    ]);
    expect(explainLosses([], events, { startedAt: T0 })).toEqual([]);
  });

  it("turns an agent's warnings and errors into timeline entries, and skips everything else", () => {
    const log = [
      '{"level":"info","time":"2026-12-06T08:09:43.700Z","msg":"peer added","key":"/k/a"}',
      '{"level":"warn","time":"2026-12-06T08:09:43.837Z","component":"lease","key":"/coreos.com/network/subnets/10.5.52.0-24","msg":"our lease was deleted; re-acquiring"}',
      'FatalAgentError: a crash trace line',
      '{"level":"error","time":"2026-12-06T08:09:44.000Z","msg":"dataplane reconcile failed; will retry","err":"boom"}',
      '{"level":"warn","time":"not a time","msg":"x"}',
      '{"level":"warn",',
    ].join('\n');
    expect(agentLogEvents('h2', log)).toEqual([
      { at: Date.parse('2026-12-06T08:09:43.837Z'), kind: 'agent', what: 'h2 agent warn: our lease was deleted; re-acquiring (/coreos.com/network/subnets/10.5.52.0-24)' },
      { at: Date.parse('2026-12-06T08:09:44.000Z'), kind: 'agent', what: 'h2 agent error: dataplane reconcile failed; will retry (boom)' },
    ]);
  });
});
