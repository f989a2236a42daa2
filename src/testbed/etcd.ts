// What the etcd supervisor (etcd-cluster.ts) knows about etcd itself: a member's command line,
// reading `etcdctl endpoint status`, which member the others follow, and the etcdctl steps
// that turn auth on. Pure: no process is started here.

export interface EtcdMemberAddress {
  name: string;
  dataDir: string;
  clientUrl: string;
  peerUrl: string;
}

export interface EtcdServerCerts {
  ca: string;
  cert: string;
  key: string;
  /** Require clients to present a certificate signed by `ca` (--client-cert-auth). */
  clientCertAuth?: boolean;
}

export interface EtcdMemberOptions {
  /** Keeps two clusters started at once from joining each other. */
  token?: string;
  tls?: EtcdServerCerts;
  /** Raft timings; etcd's own defaults (100/1000 ms) when left out. */
  heartbeatMs?: number;
  electionMs?: number;
  /** Logger flags; `--log-level error` when left out. */
  logArgs?: string[];
  extraArgs?: string[];
}

/** The command line of member i of a new cluster of `members`. */
export function etcdMemberArgs(i: number, members: EtcdMemberAddress[], opts: EtcdMemberOptions = {}): string[] {
  const m = members[i];
  if (!m) throw new Error(`no etcd member ${i} (0..${members.length - 1})`);
  const tls = opts.tls;
  return [
    '--name', m.name,
    '--data-dir', m.dataDir,
    '--listen-client-urls', m.clientUrl,
    '--advertise-client-urls', m.clientUrl,
    '--listen-peer-urls', m.peerUrl,
    '--initial-advertise-peer-urls', m.peerUrl,
    '--initial-cluster', members.map((x) => `${x.name}=${x.peerUrl}`).join(','),
    ...(opts.token ? ['--initial-cluster-token', opts.token] : []),
    ...(opts.heartbeatMs !== undefined ? ['--heartbeat-interval', String(opts.heartbeatMs)] : []),
    ...(opts.electionMs !== undefined ? ['--election-timeout', String(opts.electionMs)] : []),
    ...(opts.logArgs ?? ['--log-level', 'error']),
    ...(tls ? ['--cert-file', tls.cert, '--key-file', tls.key, '--trusted-ca-file', tls.ca] : []),
    ...(tls?.clientCertAuth ? ['--client-cert-auth'] : []),
    ...(opts.extraArgs ?? []),
  ];
}

export interface EndpointStatus {
  endpoint: string;
  /** Decimal strings: etcd's ids are uint64 and do not fit a JS number. */
  memberId: string;
  leader: string;
  revision: number;
  raftIndex: number;
}

/** `etcdctl endpoint status -w json`, with the ids kept exact; entries that do not parse are left out. */
export function parseEndpointStatus(json: string): EndpointStatus[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.replace(/"(member_id|leader|cluster_id)":(\d+)/g, '"$1":"$2"'));
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  return parsed.flatMap((e: unknown) => {
    const entry = e as {
      Endpoint?: unknown;
      Status?: { header?: { member_id?: unknown; revision?: unknown }; leader?: unknown; raftIndex?: unknown };
    } | null;
    const endpoint = entry?.Endpoint;
    const memberId = entry?.Status?.header?.member_id;
    const leader = entry?.Status?.leader;
    return typeof endpoint === 'string' && typeof memberId === 'string' && typeof leader === 'string'
      ? [{ endpoint, memberId, leader, revision: Number(entry?.Status?.header?.revision ?? 0), raftIndex: Number(entry?.Status?.raftIndex ?? 0) }]
      : [];
  });
}

/**
 * The endpoint of the leader when every one of `expected` members answered and all name the
 * same member, which is among them; undefined during an election or a partial answer.
 */
export function agreedLeader(statuses: EndpointStatus[], expected: number): string | undefined {
  if (statuses.length !== expected || expected === 0) return undefined;
  const leaders = new Set(statuses.map((s) => s.leader));
  if (leaders.size !== 1) return undefined;
  return statuses.find((s) => s.memberId === statuses[0]!.leader)?.endpoint;
}

export interface EtcdAuthSetup {
  rootPassword: string;
  user: string;
  password: string;
  role: string;
  /** Keys the role may read and write (granted with --prefix). */
  prefix: string;
}

export interface EtcdctlStep {
  args: string[];
  /** Fed on stdin: passwords never show in a process list. */
  input?: string;
  /** A step that some etcd versions have already done (root's role comes with the user). */
  mayFail?: boolean;
}

/** Root, and a user whose role may read and write only under prefix; then auth on. */
export function etcdAuthSteps(a: EtcdAuthSetup): EtcdctlStep[] {
  return [
    { args: ['user', 'add', 'root', '--interactive=false'], input: a.rootPassword + '\n' },
    { args: ['user', 'grant-role', 'root', 'root'], mayFail: true },
    { args: ['user', 'add', a.user, '--interactive=false'], input: a.password + '\n' },
    { args: ['role', 'add', a.role] },
    { args: ['role', 'grant-permission', a.role, 'readwrite', a.prefix, '--prefix=true'] },
    { args: ['user', 'grant-role', a.user, a.role] },
    { args: ['auth', 'enable'] },
  ];
}
