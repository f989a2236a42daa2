// The CLI as a function: argv and I/O in, exit code out. main.ts wires it to the process;
// tests call it in-process. Parse, call the library, print: nothing else lives here.
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { formatProblem, isUserError, namedError, ValidationError } from '../api/errors.js';
import { StoreAuthError, StoreUnavailableError } from '../store/errors.js';
import { parseManifests, type ManifestObject } from '../api/manifest.js';
import { printable } from '../printable.js';
import type { Kind, Printable, Resource } from '../api/types.js';
import { ETCD_FLAG_OPTIONS, ETCD_FLAGS, EtcdFlagError, PasswordFileError, weftEtcdConnection } from '../store/etcd-flags.js';
import type { DeleteTarget } from '../control/delete.js';
import { ResourceStore } from '../control/resources.js';
import { Store } from '../store/store.js';
import { HELP } from './help.js';
import { hostNetworks } from './host-networks.js';
import type { HostNetwork } from '../api/network-safety.js';
import { readInputs } from './input.js';
import {
  describeLease,
  leaseTable,
  networkTable,
  nodeTable,
  OUTPUT_FORMATS,
  serialize,
  statusWarnings,
  subnetTable,
  type OutputFormat,
} from './print.js';
import { unifiedDiff } from './unidiff.js';
import { weftVersion as version } from '../version.js';

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Raw bytes (decoded strictly as UTF-8) or already-decoded text. */
  readStdin(): Promise<string | Uint8Array>;
  env: Record<string, string | undefined>;
  now?: () => Date;
  /** Deadline for each etcd call; the CLI must fail fast when etcd is down. */
  callTimeoutMs?: number;
  /** The networks of this host's interfaces; default: read from the system. */
  hostNetworks?: () => HostNetwork[];
}

class UsageError extends namedError('UsageError') {}

const GLOBAL: string[] = [...ETCD_FLAGS, 'help'];

const OPTIONS = {
  ...ETCD_FLAG_OPTIONS,
  help: { type: 'boolean', short: 'h' },
  filename: { type: 'string', short: 'f', multiple: true },
  recursive: { type: 'boolean', short: 'R' },
  'dry-run': { type: 'boolean' },
  force: { type: 'boolean' },
  output: { type: 'string', short: 'o' },
  network: { type: 'string' },
  'ignore-not-found': { type: 'boolean' },
  version: { type: 'boolean' },
} as const;

const COMMAND_FLAGS: Record<string, string[]> = {
  apply: ['filename', 'recursive', 'dry-run', 'force'],
  get: ['output', 'network'],
  describe: ['network'],
  delete: ['filename', 'recursive', 'force', 'network', 'ignore-not-found'],
  diff: ['filename', 'recursive'],
  version: [],
  help: [],
};

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K] extends { multiple: true } ? string[] : (typeof OPTIONS)[K] extends { type: 'boolean' } ? boolean : string };

const KIND_NAMES: Record<string, Kind> = {
  network: 'Network', networks: 'Network', net: 'Network', nets: 'Network',
  subnet: 'Subnet', subnets: 'Subnet', sn: 'Subnet',
  lease: 'Lease', leases: 'Lease',
};
const NODE_NAMES = ['node', 'nodes', 'no'];

export async function runCli(argv: string[], io: CliIO): Promise<number> {
  if (argv[0] === 'agent') {
    const { runAgentCommand } = await import('../agent/main.js');
    return runAgentCommand(argv.slice(1));
  }
  if (argv[0] === 'serve') {
    const { runServeCommand } = await import('../serve/main.js');
    return runServeCommand(argv.slice(1), io);
  }
  let values: Values;
  let positionals: string[];
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    values = parsed.values as Values;
    positionals = parsed.positionals;
  } catch (err) {
    io.stderr(`error: ${(err as Error).message}\nRun 'weft --help' for usage.\n`);
    return 1;
  }
  const [command = '', ...args] = positionals;
  if (values.version && !command) {
    io.stdout(`weft ${version()}\n`);
    return 0;
  }
  if (command === 'help') {
    io.stdout(HELP[args[0] ?? ''] ?? HELP['']!);
    return 0;
  }
  if (!command || values.help) {
    const text = HELP[command];
    if (text === undefined) {
      io.stderr(`error: unknown command "${command}"\n${HELP['']}`);
      return 1;
    }
    (command || values.help ? io.stdout : io.stderr)(text);
    return command || values.help ? 0 : 1;
  }
  const allowed = COMMAND_FLAGS[command];
  if (!allowed) {
    io.stderr(`error: unknown command "${command}"\nRun 'weft --help' for usage.\n`);
    return 1;
  }
  for (const flag of Object.keys(values)) {
    if (!GLOBAL.includes(flag) && !allowed.includes(flag)) {
      io.stderr(`error: flag --${flag} does not apply to "weft ${command}"\nRun 'weft ${command} --help' for usage.\n`);
      return 1;
    }
  }
  if (command === 'version') {
    io.stdout(`weft ${version()}\n`);
    return 0;
  }

  let store: Store | undefined;
  const connect = () => {
    const { etcd, prefix } = weftEtcdConnection(values, io.env);
    store = Store.connect({
      ...etcd,
      prefix,
      callTimeoutMs: io.callTimeoutMs ?? 3000,
      // Two attempts: a blip is retried once, a dead etcd is reported within seconds.
      maxAttempts: 2,
    });
    return new ResourceStore(store, { ...(io.now ? { now: io.now } : {}), hostNetworks: io.hostNetworks ?? hostNetworks });
  };
  try {
    switch (command) {
      case 'apply':
        return await apply(values, args, io, connect);
      case 'get':
        return await get(values, args, io, connect);
      case 'describe':
        return await describe(values, args, io, connect);
      case 'delete':
        return await del(values, args, io, connect);
      case 'diff':
        return await diff(values, args, io, connect);
    }
    return 1;
  } catch (err) {
    return reportError(err, io);
  } finally {
    store?.close();
  }
}

function reportError(err: unknown, io: CliIO): number {
  if (err instanceof ValidationError) {
    io.stderr(err.problems.map((p) => printable(formatProblem(p))).join('\n') + '\n');
    return 1;
  }
  if (err instanceof UsageError || err instanceof EtcdFlagError) {
    io.stderr(`error: ${printable(err.message)}\n`);
    return 1;
  }
  if (isUserError(err)) {
    io.stderr(`error: ${printable((err as Error).message)}\n`);
    return 1;
  }
  if (err instanceof PasswordFileError) {
    io.stderr(`error: ${printable(err.message)}\n`);
    return 2;
  }
  if (err instanceof StoreUnavailableError || err instanceof StoreAuthError) {
    // grpc-js appends resolver notes that say nothing to an operator.
    io.stderr(`error: ${err.message.replace(/\.? ?Resolution note:[\s\S]*$/, '').trimEnd()}\n`);
    return 2;
  }
  io.stderr(`error: ${printable(err instanceof Error ? err.message : String(err))}\n`);
  return 2;
}

async function loadObjects(values: Values, io: CliIO): Promise<ManifestObject[]> {
  const files = values.filename ?? [];
  if (files.length === 0) throw new UsageError('-f FILE|DIR|- is required');
  const inputs = await readInputs(files, values.recursive ?? false, io.readStdin);
  const { objects, problems } = parseManifests(inputs);
  if (problems.length > 0) throw new ValidationError(problems);
  if (objects.length === 0) throw new UsageError(`no objects found in ${files.join(', ')}`);
  return objects;
}

async function apply(values: Values, args: string[], io: CliIO, connect: () => ResourceStore): Promise<number> {
  if (args.length) throw new UsageError(`unexpected argument "${args[0]}"; use -f FILE`);
  const objects = await loadObjects(values, io);
  const rs = connect();
  const suffix = values['dry-run'] ? ' (dry run)' : '';
  await rs.apply(objects, {
    dryRun: values['dry-run'] ?? false,
    force: values.force ?? false,
    onResult: (r) => io.stdout(`${r.ref} ${r.action}${suffix}\n`),
  });
  return 0;
}

async function get(values: Values, args: string[], io: CliIO, connect: () => ResourceStore): Promise<number> {
  const [kindName, name, ...rest] = args;
  if (!kindName) throw new UsageError('which kind? weft get networks|subnets|leases|nodes [NAME]');
  const isNode = NODE_NAMES.includes(kindName.toLowerCase());
  const kind = KIND_NAMES[kindName.toLowerCase()];
  if (!kind && !isNode) throw new UsageError(`unknown kind "${kindName}"; expected networks, subnets, leases or nodes`);
  if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`);
  const format = (values.output ?? 'table') as OutputFormat;
  if (!OUTPUT_FORMATS.includes(format)) throw new UsageError(`unknown output format "${values.output}"; use ${OUTPUT_FORMATS.join(', ')}`);
  const rs = connect();
  const now = (io.now ?? (() => new Date()))().getTime();
  const single = name !== undefined;
  const manyNetworks = (networks: Set<string>) => networks.size > 1 || [...networks].some((n) => n !== 'default');
  let items: Printable[];
  let text: string;
  let warnings = '';
  if (isNode) {
    const views = await rs.getNodes(name, values.network);
    items = views.map((v) => v.resource);
    text = nodeTable(views, format === 'wide', now, manyNetworks(new Set(views.map((v) => v.resource.status.network))));
    warnings = statusWarnings(views.map((v) => v.record));
  } else if (kind === 'Network') {
    const views = await rs.getNetworks(name);
    items = views.map((v) => v.resource);
    text = networkTable(views, format === 'wide', now);
  } else if (kind === 'Subnet') {
    const subnets = await rs.getSubnets(name, values.network);
    items = subnets;
    text = subnetTable(subnets, format === 'wide', now);
  } else {
    const rows = await rs.getLeaseRows(name, values.network);
    const leases = rows.map((r) => r.lease);
    items = leases;
    const nodes = rows.map((r) => r.node);
    text = leaseTable(leases, format === 'wide', now, manyNetworks(new Set(leases.map((l) => l.spec.network))), nodes);
    if (format === 'wide') warnings = statusWarnings(nodes);
  }
  if (warnings) io.stderr(warnings);
  if (format === 'table' || format === 'wide') {
    if (items.length === 0) {
      io.stderr('No resources found\n');
      return 0;
    }
    io.stdout(text);
  } else {
    io.stdout(serialize(items, format, single));
  }
  return 0;
}

async function describe(values: Values, args: string[], io: CliIO, connect: () => ResourceStore): Promise<number> {
  const [kindName, name, ...rest] = args;
  if (!kindName || !name) throw new UsageError('usage: weft describe lease NAME [--network NAME]');
  if (KIND_NAMES[kindName.toLowerCase()] !== 'Lease') throw new UsageError(`cannot describe "${kindName}"; weft describe lease NAME`);
  if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`);
  const now = (io.now ?? (() => new Date()))().getTime();
  io.stdout(describeLease(await connect().describeLease(name, values.network), now));
  return 0;
}

async function del(values: Values, args: string[], io: CliIO, connect: () => ResourceStore): Promise<number> {
  let targets: DeleteTarget[];
  if (values.filename?.length) {
    if (args.length) throw new UsageError('give either -f or KIND NAME, not both');
    const objects = await loadObjects(values, io);
    targets = objects.map((o) => ({
      kind: o.kind,
      name: o.name,
      ...(o.kind === 'Lease' ? { network: (o.resource.spec as { network: string }).network } : values.network ? { network: values.network } : {}),
      ...(o.resource.metadata.resourceVersion ? { resourceVersion: o.resource.metadata.resourceVersion } : {}),
    }));
  } else {
    const [kindName, ...names] = args;
    const kind = kindName ? KIND_NAMES[kindName.toLowerCase()] : undefined;
    if (!kindName || names.length === 0) throw new UsageError('usage: weft delete KIND NAME [NAME...] or weft delete -f FILE');
    if (!kind) throw new UsageError(`unknown kind "${kindName}"; expected network, subnet or lease`);
    targets = names.map((n) => ({ kind, name: n, ...(values.network ? { network: values.network } : {}) }));
  }
  const rs = connect();
  const { errors } = await rs.delete(targets, {
    force: values.force ?? false,
    ignoreNotFound: values['ignore-not-found'] ?? false,
    onResult: (r) => io.stdout(`${r.ref} ${r.action}\n`),
    onError: (e) => io.stderr(`error: ${printable(e.message)}\n`),
  });
  return errors.length ? 1 : 0;
}

/** What diff compares: the object without fields that differ on every read. */
function diffable(r: Resource | undefined): string {
  if (!r) return '';
  const { status: _status, ...rest } = r as Resource & { status?: unknown };
  const { resourceVersion: _rv, uid: _uid, creationTimestamp: _ct, ...metadata } = rest.metadata;
  return stringify({ ...rest, metadata }, { lineWidth: 0 });
}

async function diff(values: Values, args: string[], io: CliIO, connect: () => ResourceStore): Promise<number> {
  if (args.length) throw new UsageError(`unexpected argument "${args[0]}"; use -f FILE`);
  const objects = await loadObjects(values, io);
  const rs = connect();
  const entries = await rs.diff(objects);
  let changed = false;
  for (const e of entries) {
    const text = unifiedDiff(diffable(e.live), diffable(e.desired), `live/${e.ref}`, `applied/${e.ref}`);
    if (text) {
      changed = true;
      io.stdout(text);
    }
  }
  return changed ? 1 : 0;
}

