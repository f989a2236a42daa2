// A small, strict reader of systemd unit files, for tests of the units in examples/deploy on
// machines without systemd-analyze (and beside it where it exists): known sections and keys
// only, one "Key=Value" per line, no continuation lines, single-valued keys once, absolute
// Exec paths.

export interface UnitEntry {
  section: string;
  key: string;
  value: string;
  line: number;
}

/** The directives the example units may use, per section (all real systemd directives). */
const KNOWN: Record<string, string[]> = {
  Unit: [
    'Description', 'Documentation', 'Wants', 'Requires', 'Requisite', 'BindsTo', 'PartOf', 'Conflicts', 'Before', 'After',
    'OnFailure', 'StartLimitIntervalSec', 'StartLimitBurst', 'ConditionPathExists', 'AssertPathExists', 'DefaultDependencies',
  ],
  Service: [
    'Type', 'ExecStart', 'ExecStartPre', 'ExecStartPost', 'ExecReload', 'ExecStop', 'ExecStopPost', 'Restart', 'RestartSec',
    'TimeoutStartSec', 'TimeoutStopSec', 'KillMode', 'KillSignal', 'Environment', 'EnvironmentFile', 'User', 'Group',
    'WorkingDirectory', 'LimitNOFILE', 'CapabilityBoundingSet', 'AmbientCapabilities', 'NoNewPrivileges', 'ProtectSystem',
    'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectKernelLogs',
    'ProtectControlGroups', 'ProtectClock', 'ProtectHostname', 'RestrictNamespaces', 'RestrictAddressFamilies',
    'RestrictRealtime', 'RestrictSUIDSGID', 'LockPersonality', 'MemoryDenyWriteExecute', 'SystemCallArchitectures',
    'SystemCallFilter', 'SystemCallErrorNumber', 'UMask', 'ReadWritePaths', 'ReadOnlyPaths', 'InaccessiblePaths',
    'RuntimeDirectory', 'RuntimeDirectoryMode', 'RuntimeDirectoryPreserve', 'StateDirectory', 'StandardOutput',
    'StandardError', 'SyslogIdentifier',
  ],
  Install: ['WantedBy', 'RequiredBy', 'Alias', 'Also'],
};

/** Keys that may appear more than once (list-valued, or resettable with an empty value). */
const REPEATABLE = new Set([
  'Wants', 'Requires', 'Before', 'After', 'Documentation', 'ExecStart', 'ExecStartPre', 'ExecStartPost', 'ExecStop',
  'ExecStopPost', 'Environment', 'EnvironmentFile', 'ReadWritePaths', 'ReadOnlyPaths', 'InaccessiblePaths',
  'SystemCallFilter', 'RestrictAddressFamilies', 'CapabilityBoundingSet', 'AmbientCapabilities', 'WantedBy', 'RequiredBy',
]);

export function parseUnitFile(text: string, file: string): { entries: UnitEntry[]; problems: string[] } {
  const entries: UnitEntry[] = [];
  const problems: string[] = [];
  let section: string | undefined;
  const seen = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const at = `${file}:${line}`;
    if (/[\r\t]/.test(raw)) problems.push(`${at}: carriage return or tab`);
    const text = raw.trim();
    if (text === '' || text.startsWith('#') || text.startsWith(';')) return;
    if (text.endsWith('\\')) {
      problems.push(`${at}: continuation lines are not used here`);
      return;
    }
    const header = /^\[([A-Za-z]+)\]$/.exec(text);
    if (header) {
      section = header[1]!;
      if (!KNOWN[section]) problems.push(`${at}: unknown section [${section}]`);
      return;
    }
    const m = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(text);
    if (!m) {
      problems.push(`${at}: not a Key=Value line`);
      return;
    }
    const [, key, value] = m as unknown as [string, string, string];
    if (!section) {
      problems.push(`${at}: ${key} before any section`);
      return;
    }
    if (!KNOWN[section]?.includes(key)) problems.push(`${at}: unknown key ${key} in [${section}]`);
    const id = `${section}.${key}`;
    if (seen.has(id) && !REPEATABLE.has(key)) problems.push(`${at}: ${key} given twice`);
    seen.add(id);
    if (value === '' && !REPEATABLE.has(key)) problems.push(`${at}: ${key} is empty`);
    if (key.startsWith('Exec') && value !== '') {
      // Prefixes: @ - : + ! (and !!); then the absolute path of the program.
      const program = value.replace(/^[-@:+!]+/, '').split(/\s+/)[0]!;
      if (!program.startsWith('/')) problems.push(`${at}: ${key} must name the program by absolute path, got ${program}`);
    }
    entries.push({ section, key, value, line });
  });
  return { entries, problems };
}

/** Every value of Key in [Section], in order (a list reset by an empty value starts over). */
export function valuesOf(entries: UnitEntry[], section: string, key: string): string[] {
  const out: string[] = [];
  for (const e of entries) {
    if (e.section !== section || e.key !== key) continue;
    if (e.value === '') out.length = 0;
    else out.push(e.value);
  }
  return out;
}

/** The one value of a single-valued key. */
export function valueOf(entries: UnitEntry[], section: string, key: string): string | undefined {
  const all = valuesOf(entries, section, key);
  return all[all.length - 1];
}
