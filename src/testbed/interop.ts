// `make interop FLANNELD=/path/to/flanneld`: a mixed fleet of a real flanneld and weft agents
// on one etcd network, in namespaces (not part of `make test`: a user's clone has no
// flanneld). For each of three configs (vxlan with flanneld's Learning option; vxlan with a
// custom VNI, port and DirectRouting, written with other key cases and SubnetLen null, and
// --ip-masq; host-gw with host bits in its Network): a flanneld host and a weft host, then a
// live addition of each kind, pods pinging across every pair (on hosts whose FORWARD policy
// is DROP, so both daemons' FORWARD rules are needed), then a migration each way under a
// 20 ms ping. Also what a v0.20 flanneld can show of weft's parity: the same unit-file flags,
// subnet.env bytes, "VNI":"7" refused by both, a weft reservation no flanneld host takes.
//
// flanneld v0.20.2 (the newest that builds offline with Debian's Go) panics on SIGTERM and
// exits 2, keeping its lease; its watch can miss hosts that join in the same instant, so
// hosts start one at a time here.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { execIn, ipIn } from './netns.js';
import { poll } from './poll.js';
import { tail, Testbed, type Container, type Host } from './topology.js';

const PREFIX = '/coreos.com/network';

interface Round {
  name: string;
  config: string;
  /** The flags both daemons get, flanneld's syntax (plus the per-host subnet file). */
  flags: string[];
  /** A vxlan device whose MAC a migration must keep. */
  device?: string;
}

const ROUNDS: Round[] = [
  {
    name: 'vxlan, flanneld\'s Learning option',
    config: '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","Learning":true}}',
    flags: ['-ip-masq=false'],
    device: 'flannel.1',
  },
  {
    name: 'vxlan VNI 7, port 4789, DirectRouting, lower-case keys, SubnetLen null, --ip-masq',
    config: '{"network":"10.6.0.0/16","SubnetLen":null,"backend":{"type":"vxlan","vni":7,"port":4789,"directRouting":true}}',
    flags: ['-ip-masq'],
    device: 'flannel.7',
  },
  {
    name: 'host-gw, Network with host bits set',
    config: '{"Network":"10.7.3.7/16","Backend":{"Type":"host-gw"}}',
    flags: ['--ip-masq=false'],
  },
];

type Kind = 'flanneld' | 'weft';

interface Check {
  round: string;
  what: string;
  ok: boolean;
  detail: string;
}

class Interop {
  readonly checks: Check[] = [];
  private round = '';

  constructor(private readonly flanneld: string) {}

  check(what: string, ok: boolean, detail = ''): boolean {
    this.checks.push({ round: this.round, what, ok, detail });
    console.log(`  ${ok ? 'PASS' : 'FAIL'}  ${what}${detail ? `: ${detail}` : ''}`);
    return ok;
  }

  /** flanneld's arguments for a host, as its unit file would give them. */
  private argv(tb: Testbed, host: Host, round: Round, prefix = PREFIX): string[] {
    return [`-etcd-endpoints=${tb.etcdEndpoint}`, `-etcd-prefix=${prefix}`, '-iface=eth0', `-subnet-file=${host.subnetFile}`, '-v=1', ...round.flags];
  }

  /** Starts the daemon of `kind` on a host with the same flanneld flags; weft gets the host's node name by its environment variable. */
  start(tb: Testbed, host: Host, kind: Kind, round: Round, prefix = PREFIX): void {
    if (kind === 'flanneld') {
      tb.startForeignAgent(host, this.flanneld, this.argv(tb, host, round, prefix), 'flanneld.log');
    } else {
      // startAgent adds --subnet-file and --node-name (hosts share this machine's hostname).
      tb.startAgent(host, this.argv(tb, host, round, prefix), { iface: false, etcdFlags: [] });
    }
  }

  async join(tb: Testbed, index: number, kind: Kind, round: Round): Promise<{ host: Host; container: Container }> {
    const host = await tb.addHost(index);
    await dropForwarding(host);
    this.start(tb, host, kind, round);
    await tb.waitForSubnetEnv(host, 30_000);
    const container = host.containers[0] ?? (await tb.addContainer(host));
    return { host, container };
  }

  async run(): Promise<boolean> {
    for (const round of ROUNDS) {
      this.round = round.name;
      console.log(`\n== ${round.name}\n  config ${round.config}`);
      const tb = await Testbed.create();
      try {
        await this.runRound(tb, round);
      } catch (err) {
        this.check('round completed', false, (err as Error).message);
        for (const h of tb.hosts.values()) console.log(`  --- ${h.name} log tail:\n${tail(h.agent?.logPath ?? '', 8)}`);
      } finally {
        await tb.teardown();
      }
    }
    const failed = this.checks.filter((c) => !c.ok);
    console.log(`\ninterop: ${this.checks.length - failed.length} passed, ${failed.length} failed (flanneld: ${this.flanneld})`);
    return failed.length === 0;
  }

  private async runRound(tb: Testbed, round: Round): Promise<void> {
    const put = await tb.etcdctl(['put', `${PREFIX}/config`, round.config]);
    if (put.exitCode !== 0) throw new Error(`etcdctl put: ${put.stderr}`);
    const first = round === ROUNDS[0];
    if (first) await this.reserve(tb);

    // A flanneld host and a weft host, then a live addition of each kind while pods ping.
    const a = await this.join(tb, 1, 'flanneld', round);
    const b = await this.join(tb, 2, 'weft', round);
    this.check('flanneld and weft read the config alike (FLANNEL_NETWORK, subnet length)', sameShape(tb, a.host, b.host), `${envLine(tb, a.host, 'FLANNEL_SUBNET')} / ${envLine(tb, b.host, 'FLANNEL_SUBNET')}`);
    await this.mesh(tb, 'pods across flanneld and weft');
    const steady = [tb.startPing(a.container, b.container.ip, 20), tb.startPing(b.container, a.container.ip, 20)];
    await this.join(tb, 3, 'flanneld', round);
    await this.mesh(tb, 'a flanneld host added live');
    await this.join(tb, 4, 'weft', round);
    await this.mesh(tb, 'a weft host added live');
    await this.lossless(steady, 'no packet lost between existing pods while hosts joined');
    await this.forwardChains(tb);

    if (first) {
      await this.vniAsString(tb, round);
      const held = await tb.etcdctl(['get', `${PREFIX}/subnets/10.5.200.0-24`, '--print-value-only']);
      this.check('a weft reservation (node name only) is taken by no flanneld host', !held.stdout.includes('BackendType') && held.stdout.includes('"NodeName":"spare"'), held.stdout.trim());
    }

    // Migrations under a 20 ms ping: flanneld -> weft on host 1, weft -> flanneld on host 2.
    await this.migrate(tb, a.host, 'weft', round, b.container);
    await this.migrate(tb, b.host, 'flanneld', round, a.container);
    await this.mesh(tb, 'every pair after both migrations');
  }

  private async migrate(tb: Testbed, host: Host, to: Kind, round: Round, peer: Container): Promise<void> {
    const local = host.containers[0]!;
    const envBefore = readFileSync(host.subnetFile, 'utf8');
    const mac = round.device ? await linkMac(host, round.device) : undefined;
    const learningBefore = round.device ? await deviceLearning(host, round.device) : undefined;
    const pings = [tb.startPing(peer, local.ip, 20), tb.startPing(local, peer.ip, 20)];
    await tb.stopAgent(host); // flanneld v0.20 panics on SIGTERM (exit 2), keeping its lease
    const t0 = Date.now();
    this.start(tb, host, to, round);
    try {
      if (to === 'weft') {
        await poll(() => /"msg":"ready"/.test(tb.agentLog(host)), { timeoutMs: 30_000, what: `weft on ${host.name} to be ready` });
      } else {
        await poll(() => /Wrote subnet file|Running backend/.test(tb.agentLog(host)), { timeoutMs: 30_000, what: `flanneld on ${host.name} to run` });
      }
      await new Promise((r) => setTimeout(r, 2000)); // traffic through the new daemon's first sync
    } finally {
      await this.lossless(pings, `${to === 'weft' ? 'flanneld -> weft' : 'weft -> flanneld'} on ${host.name} under a 20 ms ping, both ways (${Date.now() - t0} ms)`);
    }
    const envAfter = readFileSync(host.subnetFile, 'utf8');
    this.check(`subnet.env bytes identical across the migration (${to === 'weft' ? 'flanneld\'s = weft\'s' : 'weft\'s = flanneld\'s'})`, envAfter === envBefore, JSON.stringify(envAfter));
    if (round.device) {
      const after = await linkMac(host, round.device);
      this.check(`${round.device} adopted in place (MAC kept)`, after === mac && mac !== undefined, `${mac} -> ${after}`);
      if (to === 'weft') {
        const learning = await deviceLearning(host, round.device);
        this.check(`${round.device}: learning off after weft adopted it`, learning === false, `learning ${learningBefore} -> ${learning}`);
      }
    }
  }

  /** Every host's FORWARD policy is DROP: the pods reach each other through each daemon's own ACCEPT chain. */
  private async forwardChains(tb: Testbed): Promise<void> {
    const found: string[] = [];
    let ok = true;
    for (const h of tb.hosts.values()) {
      const save = (await execIn(h.ns, 'iptables-save', ['-t', 'filter'])).stdout;
      const chain = h.agent?.logPath.endsWith('flanneld.log') ? 'FLANNEL-FWD' : 'WEFT-FWD';
      const has = save.includes(':FORWARD DROP') && save.includes(`-A FORWARD -m comment --comment "${chain === 'WEFT-FWD' ? 'weft forward' : 'flanneld forward'}" -j ${chain}`);
      ok &&= has;
      found.push(`${h.name} ${has ? chain : `no ${chain}`}`);
    }
    this.check('FORWARD policy DROP on every host, pod traffic accepted by each daemon\'s FORWARD chain', ok, found.join(', '));
  }

  private async mesh(tb: Testbed, what: string): Promise<void> {
    const containers = [...tb.hosts.values()].flatMap((h) => h.containers);
    const failed: string[] = [];
    let slowest = 0;
    for (const from of containers) {
      for (const to of containers) {
        if (from === to) continue;
        try {
          slowest = Math.max(slowest, await tb.waitReachable(from, to.ip, 15_000));
        } catch {
          failed.push(`${from.name}->${to.name}`);
        }
      }
    }
    const pairs = containers.length * (containers.length - 1);
    this.check(`${what}: ${pairs} pod pairs reach each other`, failed.length === 0, failed.length ? `unreachable ${failed.join(', ')}` : `slowest ${slowest} ms`);
  }

  private async lossless(pings: { stop(): Promise<{ lostSeqs: number[]; received: number }> }[], what: string): Promise<void> {
    const results = await Promise.all(pings.map((p) => p.stop()));
    const lost = results.reduce((n, r) => n + r.lostSeqs.length, 0);
    const received = results.reduce((n, r) => n + r.received, 0);
    this.check(what, lost === 0 && received > 0, `${received} replies, ${lost} lost`);
  }

  /** Before any flanneld host exists: a weft reservation for a node name only. */
  private async reserve(tb: Testbed): Promise<void> {
    const yaml = 'apiVersion: weft.io/v1alpha1\nkind: Subnet\nmetadata:\n  name: spare\nspec:\n  network: default\n  cidr: 10.5.200.0/24\n  node: spare\n';
    const r = await tb.weft(['apply', '-f', '-'], { input: yaml });
    if (r.exitCode !== 0) throw new Error(`weft apply of the reservation: ${r.stderr}`);
  }

  /** "VNI":"7" under another prefix: flanneld refuses it, and so does weft, for the same reason. */
  private async vniAsString(tb: Testbed, round: Round): Promise<void> {
    const prefix = '/interop/vni-string';
    await tb.etcdctl(['put', `${prefix}/config`, '{"Network":"10.9.0.0/16","Backend":{"Type":"vxlan","VNI":"7"}}']);
    const h = await tb.addHost(9);
    const f = { ...h, subnetFile: `${h.dir}/flanneld-vni.env` };
    tb.startForeignAgent(h, this.flanneld, this.argv(tb, f, round, prefix), 'flanneld-vni.log');
    const status = await h.agent!.exited;
    const flannelLog = readFileSync(h.agent!.logPath, 'utf8');
    const flannelSays = /error decoding VXLAN backend config: [^\n"]*/.exec(flannelLog)?.[0] ?? '';
    this.start(tb, h, 'weft', round, prefix);
    const weftSays = await poll(() => /error decoding VXLAN backend config: [^\n"]*/.exec(tb.agentLog(h))?.[0], { timeoutMs: 15_000, what: 'weft to refuse the config' }).catch(() => '');
    await tb.stopAgent(h);
    await tb.removeHost(h);
    this.check('"VNI":"7": flanneld refuses it (and exits)', flannelSays !== '' && status.code !== 0, `exit ${status.code}: ${flannelSays}`);
    this.check('"VNI":"7": weft refuses it with flanneld\'s reason', weftSays.includes('cannot unmarshal string into Go struct field') && weftSays.includes('of type int'), weftSays);
  }
}

function envLine(tb: Testbed, host: Host, key: string): string {
  return new RegExp(`^${key}=(.*)$`, 'm').exec(readFileSync(host.subnetFile, 'utf8'))?.[1] ?? '';
}

function sameShape(tb: Testbed, a: Host, b: Host): boolean {
  const prefixOf = (h: Host) => envLine(tb, h, 'FLANNEL_SUBNET').split('/')[1];
  return envLine(tb, a, 'FLANNEL_NETWORK') === envLine(tb, b, 'FLANNEL_NETWORK') && prefixOf(a) === prefixOf(b) && envLine(tb, a, 'FLANNEL_MTU') === envLine(tb, b, 'FLANNEL_MTU');
}

async function dropForwarding(host: Host): Promise<void> {
  const r = await execIn(host.ns, 'iptables', ['-w', '-P', 'FORWARD', 'DROP']);
  if (r.exitCode !== 0) throw new Error(`iptables -P FORWARD DROP: ${r.stderr}`);
}

async function linkMac(host: Host, dev: string): Promise<string | undefined> {
  const r = await ipIn(host.ns, ['-json', 'link', 'show', dev]).catch(() => undefined);
  return r ? (JSON.parse(r.stdout) as { address?: string }[])[0]?.address : undefined;
}

async function deviceLearning(host: Host, dev: string): Promise<boolean | undefined> {
  const r = await ipIn(host.ns, ['-d', '-json', 'link', 'show', dev]);
  return (JSON.parse(r.stdout) as { linkinfo?: { info_data?: { learning?: boolean } } }[])[0]?.linkinfo?.info_data?.learning;
}

async function main(): Promise<number> {
  const i = process.argv.indexOf('--flanneld');
  const bin = i >= 0 ? process.argv[i + 1] : process.env.FLANNELD;
  if (!bin) {
    console.error('usage: node dist/testbed/interop.js --flanneld /path/to/flanneld   (make interop FLANNELD=...)');
    return 2;
  }
  if (process.getuid?.() !== 0) {
    console.error('interop creates network namespaces: run it as root');
    return 2;
  }
  const version = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  if (version.error) {
    console.error(`cannot run ${bin}: ${version.error.message}`);
    return 2;
  }
  console.log(`flanneld ${(version.stderr || version.stdout).trim()} at ${bin}`);
  return (await new Interop(bin).run()) ? 0 : 1;
}

process.exitCode = await main();
