// `make demo`: a throwaway etcd and a few hosts in network namespaces on a dual-stack
// underlay, each running `weft agent` for a dual-stack Network with a container on its bridge;
// shows leases, subnet.env and pings across hosts over IPv4 and IPv6, then adds a host while
// traffic flows on both. `node dist/testbed/demo.js down` removes
// whatever an interrupted run left behind.
import { namedError } from '../api/errors.js';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nsPrefix, removeLeftovers } from './netns.js';
import { REPO_ROOT } from './paths.js';
import { poll, PollAbort } from './poll.js';
import { startServeIn, type ServeInNamespace } from './serve.js';
import { tail, Testbed, type Container, type Host } from './topology.js';

const RUN_ID = 'demo';
const WORK_DIR = join(REPO_ROOT, '.demo');
const HEALTHZ_PORT = 8285;
// Text logs: the demo shows a person an agent's last lines when something goes wrong.
// The Network is examples/dual-stack.yaml's (named "dual"), or the same written here.
const NETWORK = 'dual';
const AGENT_ARGS = ['--network', NETWORK, '--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTHZ_PORT), '--log-format', 'text'];

const FALLBACK_NETWORK = `apiVersion: weft.io/v1alpha1
kind: Network
metadata:
  name: ${NETWORK}
spec:
  cidr: 10.7.0.0/16
  ipv6Cidr: fd00:7::/48
  backend:
    type: vxlan
    vni: 7
`;

const tty = process.stdout.isTTY;
const paint = (code: string, s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = (s: string) => paint('1', s);
const green = (s: string) => paint('32', s);
const red = (s: string) => paint('31', s);
const dim = (s: string) => paint('2', s);

function heading(title: string): void {
  console.log(`\n${bold(`== ${title}`)}`);
}

function indent(text: string, by = '  '): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => by + l)
    .join('\n');
}

class DemoFailure extends namedError('DemoFailure') {}

// WEFT_BIN runs the demo against another weft executable (a node script), e.g. another build.
const WEFT_BIN = process.env.WEFT_BIN || undefined;

function preflight(): void {
  if (process.getuid?.() !== 0) throw new DemoFailure('the demo creates network namespaces: run it as root');
  if (!WEFT_BIN && !existsSync(join(REPO_ROOT, 'dist', 'cli', 'main.js'))) throw new DemoFailure('dist/ is missing: run `make build` first');
}

/**
 * When the agent logged that it is ready (epoch ms). Its log is read every 10 ms: cheap,
 * where each /readyz check starts a node process in the host's namespace that would compete
 * with the agent for the CPU and add its own wait to the rolling addition's figures.
 */
async function readyLogged(tb: Testbed, host: Host): Promise<number> {
  await poll(
    () => {
      if (host.agent?.status) throw new PollAbort(new DemoFailure(`agent on ${host.name} exited`));
      return READY_LINE.test(tb.agentLog(host));
    },
    { timeoutMs: 30_000, intervalMs: 10, what: `${host.name} agent to log that it is ready` },
  );
  return Date.now();
}

/** The agent's /readyz (or, if it has none, /healthz) answers 200. */
async function confirmReady(tb: Testbed, host: Host): Promise<void> {
  const base = `http://127.0.0.1:${HEALTHZ_PORT}`;
  await poll(
    async () => {
      if (host.agent?.status) throw new PollAbort(new DemoFailure(`agent on ${host.name} exited`));
      const ready = await tb.httpGet(host, `${base}/readyz`);
      if (ready.status === 404) return (await tb.httpGet(host, `${base}/healthz`)).status === 200;
      return ready.status === 200;
    },
    { timeoutMs: 30_000, intervalMs: 200, what: `${host.name} agent to report ready on ${base}/readyz` },
  );
}

/** The agent's `ready` line (text log format, as AGENT_ARGS asks). */
const READY_LINE = /^\S+ INFO\s+ready(\s|$)/m;

interface HostUp {
  host: Host;
  container: Container;
  /** When the agent was started (epoch ms). */
  startedAt: number;
  /** When the agent logged that it is ready (epoch ms); it may still be starting when the container is made. */
  readyAt: Promise<number>;
}

/**
 * A host with its agent and one container. The container's namespace is made before the
 * agent starts (a runtime's pod sandbox) and wired as soon as subnet.env exists (all a CNI
 * plugin such as flannel's reads), while the agent finishes its start: as on a node, where
 * pods do not wait for it.
 */
async function bringUpHost(tb: Testbed, index: number): Promise<HostUp> {
  const host = await tb.addHost(index);
  await tb.prepareContainer(host);
  const startedAt = Date.now();
  tb.startAgent(host, AGENT_ARGS);
  const readyAt = readyLogged(tb, host);
  readyAt.catch(() => {}); // awaited by the caller; this only keeps an early failure from going unhandled
  await tb.waitForSubnetEnv(host, 30_000);
  const container = await tb.addContainer(host);
  return { host, container, startedAt, readyAt };
}

function printSubnetEnv(tb: Testbed, host: Host): void {
  const env = tb.readSubnetEnv(host);
  console.log(`  ${bold(host.name)} ${dim(`(${host.ip}, ${host.subnetFile})`)}`);
  console.log(indent(env?.text ?? '(missing)', '    '));
}

interface Cell {
  ok: boolean;
  text: string;
}

/** Pings every container from every other one; waits for each path up to timeoutMs first. */
async function pingMatrix(tb: Testbed, from: Container[], to: Container[], family: 4 | 6, timeoutMs = 10_000): Promise<boolean> {
  const addr = (c: Container) => (family === 6 ? c.ip6! : c.ip);
  // One deadline for the whole table, so a broken overlay fails in seconds, not per pair.
  const deadline = Date.now() + timeoutMs;
  const rows: Cell[][] = [];
  let allOk = true;
  for (const a of from) {
    const row: Cell[] = [];
    for (const b of to) {
      if (a === b) {
        row.push({ ok: true, text: '-' });
        continue;
      }
      const reachable = await tb.waitReachable(a, addr(b), Math.max(1000, deadline - Date.now())).then(
        () => true,
        () => false,
      );
      const r = reachable ? await tb.pingAny(a, addr(b), { count: 3, intervalSec: 0.05 }) : undefined;
      const ok = r !== undefined && r.received === r.sent && r.sent > 0;
      allOk &&= ok;
      const rtt = r?.rttAvgMs !== undefined ? ` ${r.rttAvgMs.toFixed(2)} ms` : '';
      row.push({ ok, text: ok ? `OK${rtt}` : `FAIL${r ? ` ${r.received}/${r.sent}` : ''}` });
    }
    rows.push(row);
  }
  const label = (c: Container) => `${c.name} ${addr(c)}`;
  const first = Math.max('from \\ to'.length, ...from.map((c) => `${label(c)} @${c.host.name}`.length)) + 2;
  const width = Math.max(14, ...to.map((c) => label(c).length)) + 2;
  const header = to.map((c, j) => (j === to.length - 1 ? label(c) : label(c).padEnd(width))).join('');
  console.log(`  ${bold('from \\ to'.padEnd(first) + header)}`);
  from.forEach((a, i) => {
    const cells = rows[i]!.map((cell, j) => {
      const padded = j === to.length - 1 ? cell.text : cell.text.padEnd(width);
      return cell.text === '-' ? dim(padded) : cell.ok ? green(padded) : red(padded);
    });
    console.log(`  ${`${label(a)} @${a.host.name}`.padEnd(first)}${cells.join('')}`);
  });
  return allOk;
}

/**
 * Prints `weft get leases -o wide` once every lease's host reports READY with every other
 * host programmed (agents publish their status within seconds), or after 15 s with what it
 * says then.
 */
async function showLeases(tb: Testbed): Promise<void> {
  const started = Date.now();
  const ready = (text: string) => {
    const [header, ...rows] = text.trimEnd().split('\n');
    const cols = header!.split(/\s+/);
    const [readyCol, peersCol] = [cols.indexOf('READY'), cols.indexOf('PEERS')];
    const all = `${rows.length - 1}/${rows.length - 1}`;
    return rows.length > 0 && rows.every((row) => row.split(/\s+/)[readyCol] === 'yes' && row.split(/\s+/)[peersCol] === all);
  };
  let r;
  try {
    r = await poll(async () => {
      const x = await tb.weft(['get', 'leases', '-o', 'wide']);
      return x.exitCode === 0 && ready(x.stdout) ? x : undefined;
    }, { timeoutMs: 15_000, intervalMs: 250, what: 'every host READY' });
    console.log(dim(`  every host READY with all its peers in weft get leases -o wide after ${Date.now() - started} ms`));
  } catch {
    console.log(red('  not every host reported READY within 15 s'));
    r = await tb.weft(['get', 'leases', '-o', 'wide']);
  }
  if (r.exitCode !== 0) console.log(red(indent(`weft get leases failed (exit ${r.exitCode}):\n${r.stderr || r.stdout}`)));
  else console.log(indent(r.stdout));
}

/** kubectl on PATH, if any (`make deps` installs it; the demo works without it). */
function kubectlOnPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(join(dir, 'kubectl'))) return join(dir, 'kubectl');
  return undefined;
}

/** The same leases through the Kubernetes API: `weft serve` beside etcd, and the real kubectl. */
async function showKubectlLeases(tb: Testbed): Promise<boolean> {
  const kubectl = kubectlOnPath();
  if (!kubectl) {
    console.log(dim('  kubectl is not installed (Debian: kubernetes-client); skipped'));
    return true;
  }
  let serve: ServeInNamespace | undefined;
  try {
    serve = await startServeIn(tb.underlay, tb.etcdFlags(), tb.workDir, { kubectl, ...(WEFT_BIN ? { weftBin: WEFT_BIN } : {}) });
    const kubeconfig = serve.kubeconfig.startsWith(REPO_ROOT) ? serve.kubeconfig.slice(REPO_ROOT.length + 1) : serve.kubeconfig;
    console.log(`  $ weft serve --etcd-endpoints ${tb.etcdEndpoint} --write-kubeconfig ${kubeconfig}   ${dim(`(in ${tb.underlay})`)}`);
    console.log(`  $ kubectl --kubeconfig ${kubeconfig} get leases -o wide`);
    const r = await serve.kubectl(['get', 'leases', '-o', 'wide']);
    if (r.exitCode !== 0) {
      console.log(red(indent(`kubectl get leases failed (exit ${r.exitCode}):\n${r.stderr || r.stdout}`)));
      return false;
    }
    console.log(indent(r.stdout, '    '));
    return true;
  } catch (err) {
    console.log(red(`  weft serve did not start: ${err instanceof Error ? err.message : String(err)}`));
    return false;
  } finally {
    await serve?.stop();
  }
}

async function run(tb: Testbed): Promise<boolean> {
  heading('Underlay');
  console.log(`  namespace ${tb.underlay}: bridge br0 192.0.2.254/24 and fd00:1::254/64, etcd at ${tb.etcdEndpoint}`);

  heading('Network');
  let file = join(REPO_ROOT, 'examples', 'dual-stack.yaml');
  if (!existsSync(file)) {
    file = join(tb.workDir, 'dual-stack.yaml');
    writeFileSync(file, FALLBACK_NETWORK);
    console.log(dim(`  (examples/dual-stack.yaml not found; using a vxlan Network 10.7.0.0/16 + fd00:7::/48)`));
  }
  const applied = await tb.weft(['apply', '-f', file]);
  if (applied.exitCode !== 0) throw new DemoFailure(`weft apply -f ${file} failed (exit ${applied.exitCode}):\n${applied.stderr || applied.stdout}`);
  console.log(`  $ weft apply -f ${file.startsWith(REPO_ROOT) ? file.slice(REPO_ROOT.length + 1) : file}`);
  console.log(indent(applied.stdout || '(no output)', '    '));

  heading('Three hosts, one agent and one container each');
  const up = [];
  for (const i of [1, 2, 3]) {
    const u = await bringUpHost(tb, i);
    const madeMs = Date.now() - u.startedAt;
    const readyMs = (await u.readyAt) - u.startedAt;
    await confirmReady(tb, u.host);
    console.log(`  ${u.host.name}: agent ready in ${readyMs} ms, ${u.container.name} = ${u.container.ip}, ${u.container.ip6} (made by ${madeMs} ms)`);
    up.push(u);
  }

  heading('weft get leases -o wide');
  await showLeases(tb);

  heading('kubectl get leases -o wide, through weft serve (the Kubernetes API)');
  const kubectlOk = await showKubectlLeases(tb);

  heading('subnet.env on each host');
  for (const u of up) printSubnetEnv(tb, u.host);

  const three = up.map((u) => u.container);
  heading('Container to container, across hosts, over IPv4 (flannel.7)');
  let ok = await pingMatrix(tb, three, three, 4);
  ok &&= kubectlOk;
  heading('Container to container, across hosts, over IPv6 (flannel-v6.7)');
  ok = (await pingMatrix(tb, three, three, 6)) && ok;

  heading('Rolling addition of h4 while c1 pings c2 every 50 ms, over IPv4 and IPv6');
  const backgrounds = [tb.startPing(three[0]!, three[1]!.ip, 50), tb.startPing(three[0]!, three[1]!.ip6!, 50)];
  const added = await bringUpHost(tb, 4);
  const c4 = added.container;
  const madeMs = Date.now() - added.startedAt;
  // From each container, pings every 10 ms to both of c4's addresses; each first answer is dated by ping itself.
  const reachedAt = await Promise.all(
    three.map((c) =>
      Promise.all([tb.firstAnswer(c, c4.ip, 10_000), tb.firstAnswer(c, c4.ip6!, 10_000)]).then(
        (at) => `${c.name} after ${Math.max(...at) - added.startedAt} ms`,
        () => red(`not from ${c.name}`),
      ),
    ),
  );
  const readyMs = (await added.readyAt) - added.startedAt;
  await confirmReady(tb, added.host);
  console.log(`  h4: agent ready in ${readyMs} ms; ${c4.name} = ${c4.ip}, ${c4.ip6} (made by ${madeMs} ms)`);
  console.log(`  ${c4.name} reachable from ${reachedAt.join(', ')} (counted from agent start, first answer over IPv4 and IPv6)`);
  const all = [...three, c4];
  ok = (await pingMatrix(tb, all, all, 4, 5000)) && ok;
  ok = (await pingMatrix(tb, all, all, 6, 5000)) && ok;
  for (const [i, background] of backgrounds.entries()) {
    const bg = await background.stop();
    const bgOk = bg.sent > 0 && bg.lost === 0;
    ok &&= bgOk;
    const lostNote = bg.lost ? ` (lost icmp_seq ${bg.lostSeqs.slice(0, 10).join(', ')})` : '';
    console.log(`  background ping c1 -> c2 over IPv${i === 0 ? 4 : 6}: ${bg.sent} sent, ${bg.received} received, ${(bgOk ? green : red)(`${bg.lost} lost`)}${lostNote}`);
  }

  heading('Leases after the addition');
  await showLeases(tb);
  return ok;
}

async function demo(): Promise<number> {
  preflight();
  console.log(bold('weft demo') + dim(`: namespaces ${nsPrefix(RUN_ID)}*, logs in ${WORK_DIR}`));
  const tb = await Testbed.create({ runId: RUN_ID, workDir: WORK_DIR, stack: 'dual', graceMs: 3000, ...(WEFT_BIN ? { weftBin: WEFT_BIN } : {}) });
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    console.log(`\n${signal}: cleaning up...`);
    void tb
      .teardown()
      .catch((err: unknown) => console.error(String(err)))
      .then(() => removeLeftovers(nsPrefix(RUN_ID)))
      .finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let ok = false;
  try {
    ok = await run(tb);
  } catch (err) {
    if (interrupted) return 130;
    console.error(`\n${red('demo failed:')} ${err instanceof Error ? err.message : String(err)}`);
  }
  if (interrupted) return 130;
  if (!ok) {
    tb.keepWorkDir = true;
    for (const h of tb.hosts.values()) {
      if (h.agent) console.error(`\n${bold(`${h.name} agent log (last lines)`)}\n${indent(tail(h.agent.logPath, 15))}`);
    }
  }

  heading('Cleaning up');
  try {
    await tb.teardown();
    console.log(`  removed namespaces ${nsPrefix(RUN_ID)}*, stopped agents and etcd`);
  } catch (err) {
    console.error(red(`  cleanup incomplete (run \`make demo-down\`): ${String(err)}`));
    return 1;
  }
  if (!ok) {
    console.log(red(`\nDemo FAILED. Logs kept in ${WORK_DIR}; \`make demo-down\` removes them.`));
    return 1;
  }
  console.log(green('\nDemo passed: every container reached every other one across hosts, and the new host joined without a lost packet.'));
  return 0;
}

async function down(): Promise<number> {
  const removed = await removeLeftovers(nsPrefix(RUN_ID));
  rmSync(WORK_DIR, { recursive: true, force: true });
  console.log(removed.length ? `removed ${removed.join(', ')}` : 'nothing left over from a demo');
  return 0;
}

const command = process.argv[2];
const main = command === 'down' ? down : command === undefined ? demo : undefined;
if (!main) {
  console.error('usage: node dist/testbed/demo.js [down]');
  process.exit(2);
}
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(red(`demo: ${err instanceof Error ? err.message : String(err)}`));
    process.exit(1);
  },
);
