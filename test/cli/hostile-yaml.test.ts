// Hostile manifests, counted: every input in the table is refused with exit code 1, a
// `FILE:LINE: kind/name: field: message` line (or `FILE:LINE: message` for syntax) that names
// the right line and field, and etcd is byte-for-byte unchanged, down to its revision.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_MANIFEST_BYTES } from '../../src/api/manifest.js';
import { execa } from 'execa';
import { BIN, etcdFlags, testPrefix, weft, type CliResult } from '../helpers/cli.js';
import { useEtcd } from '../helpers/etcd.js';

const API = 'apiVersion: weft.io/v1alpha1';

/** A Network document with one spec line swapped in (default: a valid spec). */
function net(name: string, spec = '  cidr: 10.7.0.0/16\n  backend:\n    type: vxlan\n', meta = ''): string {
  return `${API}\nkind: Network\nmetadata:\n  name: ${name}\n${meta}spec:\n${spec}`;
}

function sub(name: string, spec: string): string {
  return `${API}\nkind: Subnet\nmetadata:\n  name: ${name}\nspec:\n${spec}`;
}

/** Where the expected problem is: a 1-based line, or the nth line containing a needle. */
type Where = number | string | { needle: string; nth: number };

interface Expect {
  where: Where;
  /** "network/x" (omitted for syntax errors and whole-input problems). */
  object?: string;
  /** "spec.cidr" (omitted when the problem is the document as a whole). */
  field?: string;
  message: RegExp;
}

interface Case {
  name: string;
  input: string | Buffer;
  /** File name suffix; the CLI reads .yaml, .yml and .json alike. */
  ext?: 'yaml' | 'json';
  /** Feed through stdin (`-f -`) instead of a file. */
  stdin?: boolean;
  /** Run the real `node bin/weft` process rather than runCli in this process. */
  spawn?: boolean;
  want: Expect;
}

const BOMB = (() => {
  const lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'];
  for (let i = 1; i < 9; i++) {
    const [prev, cur] = [String.fromCharCode(96 + i), String.fromCharCode(97 + i)];
    lines.push(`${cur}: &${cur} [${Array(9).fill('*' + prev).join(', ')}]`);
  }
  return `${API}\nkind: Network\nmetadata:\n  name: lol\n  annotations:\n${lines.map((l) => '    ' + l).join('\n')}\nspec: {cidr: 10.7.0.0/16, backend: {type: vxlan}}\n`;
})();

const VALID_NET = net('fine');

/** The text with "@@" replaced by raw bytes (not valid UTF-8 on purpose). */
function withBytes(text: string, bytes: number[]): Buffer {
  const [before, after] = text.split('@@');
  return Buffer.concat([Buffer.from(before!), Buffer.from(bytes), Buffer.from(after!)]);
}

const CASES: Case[] = [
  // ---- YAML syntax ------------------------------------------------------------------------
  // The parser reports an unclosed construct where it noticed: at the end of the input.
  { name: 'unclosed flow mapping', input: `${API}\nkind: Network\nmetadata: {name: x}\nspec: {cidr: 10.7.0.0/16, backend: {type: vxlan}\n`, want: { where: 5, message: /^invalid YAML: / } },
  { name: 'unterminated quoted string', input: `${API}\nkind: Network\nmetadata:\n  name: "x\nspec: {}\n`, want: { where: 6, message: /^invalid YAML: Missing closing "quote/ } },
  { name: 'tab indentation', input: `${API}\nkind: Network\nmetadata:\n\tname: x\n`, want: { where: 4, message: /^invalid YAML: Tabs are not allowed/ } },
  { name: 'nested mapping in a compact mapping', input: `${API}\nkind: Network\nmetadata: name: x\n`, want: { where: 3, message: /^invalid YAML: Nested mappings are not allowed/ } },
  { name: 'duplicate key at the top level', input: `${API}\nkind: Network\nkind: Subnet\nmetadata: {name: x}\n`, want: { where: 3, message: /^invalid YAML: Map keys must be unique/ } },
  { name: 'duplicate key deep in spec', input: net('dup', '  cidr: 10.7.0.0/16\n  backend:\n    type: vxlan\n    vni: 1\n    vni: 2\n'), want: { where: { needle: 'vni:', nth: 2 }, message: /^invalid YAML: Map keys must be unique/ } },
  { name: 'alias to an undefined anchor', input: net('alias', '  cidr: *nowhere\n  backend: {type: vxlan}\n'), want: { where: 'cidr: *nowhere', message: /^invalid YAML: alias \*nowhere has no anchor before it$/ } },
  { name: 'billion laughs (anchors and aliases)', input: BOMB, spawn: true, want: { where: 1, message: /^invalid YAML: .*alias/i } },
  { name: 'bad JSON: unclosed object', ext: 'json', input: '{"apiVersion": "weft.io/v1alpha1", "kind": "Network",\n "metadata": {"name": "j"}\n', want: { where: 3, message: /^invalid YAML: / } },
  { name: 'bad JSON: missing colon', ext: 'json', input: '{\n"apiVersion": "weft.io/v1alpha1",\n"kind" "Network"\n}\n', want: { where: 3, message: /^invalid YAML: / } },
  { name: 'multi-document: the second document has a syntax error', input: `${VALID_NET}---\n${API}\nkind: Network\nmetadata: {name: [}\n`, want: { where: { needle: 'metadata: {name: [}', nth: 1 }, message: /^invalid YAML: / } },
  { name: '!!binary tag on a string field', input: net('bin', '  cidr: !!binary MTAuNy4wLjAvMTY=\n  backend: {type: vxlan}\n'), want: { where: 'cidr: !!binary', message: /^invalid YAML: tag "!!binary" is not allowed$/ } },
  { name: '!!set tag on labels', input: net('set', undefined, '  labels: !!set {a, b}\n'), want: { where: 'labels: !!set', message: /^invalid YAML: tag "!!set" is not allowed$/ } },
  { name: 'a local !tag', input: net('local', '  cidr: !cidr 10.7.0.0/16\n  backend: {type: vxlan}\n'), want: { where: 'cidr: !cidr', message: /^invalid YAML: tag "!cidr" is not allowed$/ } },
  { name: 'a mapping key that is a sequence', input: net('ck', '  ? [cidr, backend]\n  : 10.7.0.0/16\n  backend: {type: vxlan}\n'), want: { where: '? [cidr', message: /^invalid YAML: a mapping key must be a scalar/ } },
  { name: '!!js/function tag', input: net('fn', '  cidr: !!js/function "function () { return 1 }"\n  backend: {type: vxlan}\n'), want: { where: 'cidr: !!js', message: /^invalid YAML: tag "!!js\/function" is not allowed$/ } },
  { name: '!!python/object tag', input: net('py', '  cidr: 10.7.0.0/16\n  backend: !!python/object:os.system {type: vxlan}\n'), want: { where: 'backend: !!python', message: /^invalid YAML: tag "!!python\/object:os.system" is not allowed$/ } },
  { name: 'non-UTF-8 bytes in a label value', input: withBytes(net('bytes', undefined, '  labels:\n    team: "@@"\n'), [0xff, 0xfe, 0x41]), want: { where: 'team:', message: /^input is not valid UTF-8 \(byte \d+\)$/ } },
  { name: 'non-UTF-8 bytes on stdin, spawned', stdin: true, spawn: true, input: withBytes(`${API}\nkind: Network\nmetadata:\n  name: x\n  annotations: {a: "@@"}\nspec: {cidr: 10.7.0.0/16, backend: {type: vxlan}}\n`, [0xc3, 0x28]), want: { where: 5, message: /^input is not valid UTF-8 \(byte \d+\)$/ } },

  // ---- documents of the wrong shape ---------------------------------------------------------
  { name: 'a scalar document', input: 'just a string\n', want: { where: 1, message: /^a document must be a mapping/ } },
  { name: 'a sequence document', input: '- kind: Network\n- kind: Subnet\n', want: { where: 1, message: /^a document must be a mapping/ } },
  { name: 'multi-document: one scalar among valid documents', input: `${VALID_NET}---\n42\n---\n${net('fine2')}`, want: { where: '42', message: /^a document must be a mapping/ } },
  { name: 'JSON: an array where a document belongs', ext: 'json', input: '[{"apiVersion": "weft.io/v1alpha1", "kind": "Network"}]\n', want: { where: 1, message: /^a document must be a mapping/ } },
  { name: 'spec: null', input: `${API}\nkind: Network\nmetadata: {name: n}\nspec: null\n`, want: { where: 'spec:', object: 'network/n', field: 'spec', message: /^must be object, got null/ } },
  { name: 'spec is an array', input: `${API}\nkind: Network\nmetadata: {name: n}\nspec:\n  - cidr: 10.7.0.0/16\n`, want: { where: '- cidr', object: 'network/n', field: 'spec', message: /^must be object, got \[/ } },
  { name: 'metadata is a string', input: `${API}\nkind: Network\nmetadata: n\nspec: {cidr: 10.7.0.0/16, backend: {type: vxlan}}\n`, want: { where: 'metadata:', object: 'network/(unnamed)', field: 'metadata', message: /^must be object, got "n"/ } },
  { name: 'backend is a string', input: net('b', '  cidr: 10.7.0.0/16\n  backend: vxlan\n'), want: { where: 'backend:', object: 'network/b', field: 'spec.backend', message: /^must be object, got "vxlan"/ } },
  { name: 'labels is a list', input: net('l', undefined, '  labels:\n    - a\n'), want: { where: '- a', object: 'network/l', field: 'metadata.labels', message: /^must be object/ } },

  // ---- kinds and versions -----------------------------------------------------------------
  { name: 'an unknown kind', input: `${API}\nkind: Pod\nmetadata: {name: p}\nspec: {}\n`, want: { where: 'kind:', object: 'pod/p', field: 'kind', message: /"Pod" is not a weft kind/ } },
  { name: 'a kind in the wrong case', input: `${API}\nkind: network\nmetadata: {name: p}\nspec: {}\n`, want: { where: 'kind:', object: 'network/p', field: 'kind', message: /"network" is not a weft kind/ } },
  { name: 'no kind', input: `${API}\nmetadata: {name: p}\nspec: {}\n`, want: { where: 1, field: 'kind', message: /^is required/ } },
  { name: 'kind is a number', input: `${API}\nkind: 7\nmetadata: {name: p}\n`, want: { where: 'kind:', field: 'kind', message: /^7 is not a weft kind/ } },
  { name: 'an unserved apiVersion', input: net('v').replace('v1alpha1', 'v2'), want: { where: 1, object: 'network/v', field: 'apiVersion', message: /"weft\.io\/v2" is not served/ } },
  { name: 'apiVersion of another group', input: net('v').replace('weft.io/v1alpha1', 'v1'), want: { where: 1, object: 'network/v', field: 'apiVersion', message: /"v1" is not served/ } },
  { name: 'a Lease, which only agents write', input: `${API}\nkind: Lease\nmetadata: {name: 10.5.40.0-24}\nspec: {network: default, subnet: 10.5.40.0/24, publicIP: 192.0.2.1, backend: {type: vxlan}}\n`, want: { where: 'kind:', object: 'lease/10.5.40.0-24', field: 'kind', message: /cannot be applied/ } },

  // ---- unknown fields at every level ----------------------------------------------------------
  { name: 'unknown top-level field', input: `${net('u')}spek: {}\n`, want: { where: 'spek:', object: 'network/u', field: 'spek', message: /^unknown field; known fields: apiVersion, kind, metadata, spec/ } },
  { name: 'unknown metadata field', input: net('u', undefined, '  namespace: kube-system\n'), want: { where: 'namespace:', object: 'network/u', field: 'metadata.namespace', message: /^unknown field/ } },
  { name: 'unknown spec field', input: net('u', '  cidr: 10.7.0.0/16\n  cidrr: 10.8.0.0/16\n  backend: {type: vxlan}\n'), want: { where: 'cidrr:', object: 'network/u', field: 'spec.cidrr', message: /^unknown field; known fields: cidr, / } },
  { name: 'unknown backend field', input: net('u', '  cidr: 10.7.0.0/16\n  backend:\n    type: vxlan\n    vnii: 3\n'), want: { where: 'vnii:', object: 'network/u', field: 'spec.backend.vnii', message: /^unknown field/ } },
  { name: 'unknown Subnet spec field', input: sub('s', '  network: default\n  cidr: 10.5.30.0/24\n  node: a\n  ttl: 1h\n'), want: { where: 'ttl:', object: 'subnet/s', field: 'spec.ttl', message: /^unknown field/ } },
  { name: 'a YAML merge key (not YAML 1.2) is an unknown field', input: net('m', '  <<: {cidr: 10.7.0.0/16}\n  cidr: 10.7.0.0/16\n  backend: {type: vxlan}\n'), want: { where: '<<:', object: 'network/m', field: 'spec.<<', message: /^unknown field/ } },
  { name: 'an unknown field name with a terminal escape', input: net('esc', '  cidr: 10.7.0.0/16\n  "\\e[2Jboom": 1\n  backend: {type: vxlan}\n'), want: { where: 'boom', object: 'network/esc', field: 'spec.\\u001b[2Jboom', message: /^unknown field/ } },
  { name: 'an unknown field name with a newline forging a second problem line', input: net('nl', '  cidr: 10.7.0.0/16\n  "x\\n/etc/passwd:1: all good": 1\n  backend: {type: vxlan}\n'), want: { where: 'all good', object: 'network/nl', field: 'spec.x\\u000a/etc/passwd:1: all good', message: /^unknown field/ } },

  // ---- wrong types and out-of-range numbers ---------------------------------------------------
  { name: 'cidr is a number', input: net('t', '  cidr: 10\n  backend: {type: vxlan}\n'), want: { where: 'cidr:', object: 'network/t', field: 'spec.cidr', message: /^must be string, got 10/ } },
  { name: 'subnetLength is a string', input: net('t', '  cidr: 10.7.0.0/16\n  subnetLength: "24"\n  backend: {type: vxlan}\n'), want: { where: 'subnetLength:', object: 'network/t', field: 'spec.subnetLength', message: /^must be integer, got "24"/ } },
  { name: 'subnetLength is a float', input: net('t', '  cidr: 10.7.0.0/16\n  subnetLength: 24.5\n  backend: {type: vxlan}\n'), want: { where: 'subnetLength:', object: 'network/t', field: 'spec.subnetLength', message: /^must be integer, got 24\.5/ } },
  { name: 'subnetLength 31', input: net('t', '  cidr: 10.7.0.0/16\n  subnetLength: 31\n  backend: {type: vxlan}\n'), want: { where: 'subnetLength:', object: 'network/t', field: 'spec.subnetLength', message: /^must be <= 30, got 31/ } },
  { name: 'subnetLength shorter than the network', input: net('t', '  cidr: 10.7.0.0/16\n  subnetLength: 16\n  backend: {type: vxlan}\n'), want: { where: 'subnetLength:', object: 'network/t', field: 'spec.subnetLength', message: /./ } },
  { name: 'vni -1', input: net('t', '  cidr: 10.7.0.0/16\n  backend: {type: vxlan, vni: -1}\n'), want: { where: 'vni:', object: 'network/t', field: 'spec.backend.vni', message: /^must be >= 0, got -1/ } },
  { name: 'vni 2^24', input: net('t', '  cidr: 10.7.0.0/16\n  backend: {type: vxlan, vni: 16777216}\n'), want: { where: 'vni:', object: 'network/t', field: 'spec.backend.vni', message: /^must be <= 16777215, got 16777216/ } },
  { name: 'vni with 30 digits', input: net('t', '  cidr: 10.7.0.0/16\n  backend: {type: vxlan, vni: 999999999999999999999999999999}\n'), want: { where: 'vni:', object: 'network/t', field: 'spec.backend.vni', message: /^must be <= 16777215/ } },
  { name: 'vni .inf', input: net('t', '  cidr: 10.7.0.0/16\n  backend: {type: vxlan, vni: .inf}\n'), want: { where: 'vni:', object: 'network/t', field: 'spec.backend.vni', message: /./ } },
  { name: 'port 70000', input: net('t', '  cidr: 10.7.0.0/16\n  backend: {type: vxlan, port: 70000}\n'), want: { where: 'port:', object: 'network/t', field: 'spec.backend.port', message: /^must be <= 65535, got 70000/ } },
  { name: 'mtu 100', input: net('t', '  cidr: 10.7.0.0/16\n  backend: {type: vxlan, mtu: 100}\n'), want: { where: 'mtu:', object: 'network/t', field: 'spec.backend.mtu', message: /^must be >= 118, got 100/ } },
  { name: 'directRouting "yes" (YAML 1.2: a string)', input: net('t', '  cidr: 10.7.0.0/16\n  backend: {type: vxlan, directRouting: yes}\n'), want: { where: 'directRouting:', object: 'network/t', field: 'spec.backend.directRouting', message: /^must be boolean, got "yes"/ } },
  { name: 'backend type udp', input: net('t', '  cidr: 10.7.0.0/16\n  backend: {type: udp}\n'), want: { where: 'type: udp', object: 'network/t', field: 'spec.backend.type', message: /"udp" is not one of: vxlan, host-gw/ } },
  { name: 'leaseTTL with a space', input: net('t', '  cidr: 10.7.0.0/16\n  backend: {type: vxlan}\n  leaseTTL: 1 day\n'), want: { where: 'leaseTTL:', object: 'network/t', field: 'spec.leaseTTL', message: /is not a duration/ } },
  { name: 'resourceVersion not a number', input: net('t', undefined, '  resourceVersion: latest\n'), want: { where: 'resourceVersion:', object: 'network/t', field: 'metadata.resourceVersion', message: /"latest" is not a decimal number/ } },

  // ---- addresses -------------------------------------------------------------------------------
  { name: 'Network cidr with host bits', input: net('h', '  cidr: 10.7.1.0/16\n  backend: {type: vxlan}\n'), want: { where: 'cidr:', object: 'network/h', field: 'spec.cidr', message: /has host bits set; the network address is 10\.7\.0\.0\/16/ } },
  { name: 'Subnet cidr with host bits', input: sub('h', '  network: default\n  cidr: 10.5.30.1/24\n  node: a\n'), want: { where: 'cidr:', object: 'subnet/h', field: 'spec.cidr', message: /has host bits set; the subnet address is 10\.5\.30\.0\/24/ } },
  { name: 'cidr /33', input: net('c', '  cidr: 10.7.0.0/33\n  backend: {type: vxlan}\n'), want: { where: 'cidr:', object: 'network/c', field: 'spec.cidr', message: /is not an IPv4 CIDR/ } },
  { name: 'cidr octet 300', input: net('c', '  cidr: 300.7.0.0/16\n  backend: {type: vxlan}\n'), want: { where: 'cidr:', object: 'network/c', field: 'spec.cidr', message: /is not an IPv4 CIDR/ } },
  { name: 'IPv6 cidr where IPv4 belongs', input: net('c', '  cidr: fd00::/64\n  backend: {type: vxlan}\n'), want: { where: 'cidr:', object: 'network/c', field: 'spec.cidr', message: /is not an IPv4 CIDR/ } },
  { name: 'a network too small', input: net('c', '  cidr: 10.7.0.0/30\n  backend: {type: vxlan}\n'), want: { where: 'cidr:', object: 'network/c', field: 'spec.cidr', message: /too small/ } },
  { name: 'subnetMin outside the network', input: net('c', '  cidr: 10.7.0.0/16\n  subnetMin: 10.9.0.0\n  backend: {type: vxlan}\n'), want: { where: 'subnetMin:', object: 'network/c', field: 'spec.subnetMin', message: /outside the network/ } },
  { name: 'subnetMax not aligned', input: net('c', '  cidr: 10.7.0.0/16\n  subnetMax: 10.7.9.1\n  backend: {type: vxlan}\n'), want: { where: 'subnetMax:', object: 'network/c', field: 'spec.subnetMax', message: /./ } },
  { name: 'Subnet publicIP octet 256', input: sub('p', '  network: default\n  cidr: 10.5.30.0/24\n  publicIP: 192.0.2.256\n'), want: { where: 'publicIP:', object: 'subnet/p', field: 'spec.publicIP', message: /is not an IPv4 address/ } },
  { name: 'Subnet publicIP with a newline', input: sub('p', '  network: default\n  cidr: 10.5.30.0/24\n  publicIP: "192.0.2.1\\nvia 1.2.3.4"\n'), want: { where: 'publicIP:', object: 'subnet/p', field: 'spec.publicIP', message: /is not an IPv4 address/ } },
  { name: 'Subnet with neither node nor publicIP', input: sub('p', '  network: default\n  cidr: 10.5.30.0/24\n'), want: { where: 'spec:', object: 'subnet/p', field: 'spec', message: /must set node, publicIP or both/ } },

  // ---- names -------------------------------------------------------------------------------------
  { name: 'no metadata.name', input: `${API}\nkind: Network\nmetadata:\n  labels: {a: b}\nspec: {cidr: 10.7.0.0/16, backend: {type: vxlan}}\n`, want: { where: 'metadata:', object: 'network/(unnamed)', field: 'metadata.name', message: /^is required/ } },
  { name: 'a name that is not a DNS name', input: net('Bad_Name'), want: { where: 'name:', object: 'network/Bad_Name', field: 'metadata.name', message: /is not a DNS subdomain name/ } },
  { name: 'a network name with a dot (not a DNS label)', input: net('a.b'), want: { where: 'name:', object: 'network/a.b', field: 'metadata.name', message: /is not a DNS label/ } },
  { name: 'a 300-character name', input: net('a'.repeat(300)), want: { where: 'name:', object: `network/${'a'.repeat(300)}`, field: 'metadata.name', message: /must NOT have more than 253 characters|too long|253/ } },
  { name: 'a network named config', input: net('config'), want: { where: 'name:', object: 'network/config', field: 'metadata.name', message: /collides with flannel's own keys/ } },
  { name: 'a network named subnets', input: net('subnets'), want: { where: 'name:', object: 'network/subnets', field: 'metadata.name', message: /collides with flannel's own keys/ } },
  { name: 'a network named subnets-extra', input: net('subnets-extra'), want: { where: 'name:', object: 'network/subnets-extra', field: 'metadata.name', message: /collides with flannel's own keys/ } },
  { name: 'a name with a null byte', input: net('"a\\0b"'), want: { where: 'name:', object: 'network/a\\u0000b', field: 'metadata.name', message: /is not a DNS subdomain name/ } },
  { name: 'a Subnet node name starting with a dash', input: sub('n', '  network: default\n  cidr: 10.5.30.0/24\n  node: "-x"\n'), want: { where: 'node:', object: 'subnet/n', field: 'spec.node', message: /is not a node name/ } },
  { name: 'the same Network twice in one file', input: `${net('twin')}---\n${net('twin')}`, want: { where: { needle: API, nth: 2 }, object: 'network/twin', message: /^appears twice; first at .*\.yaml:1$/ } },

  // ---- long and large inputs -----------------------------------------------------------------------
  { name: 'a 100,000-character cidr', input: net('long', `  cidr: "${'1'.repeat(100_000)}"\n  backend: {type: vxlan}\n`), want: { where: 'cidr:', object: 'network/long', field: 'spec.cidr', message: /^"1{20,}\.\.\. is not an IPv4 CIDR/ } },
  { name: 'a 100,000-character label value', input: net('long', undefined, `  labels:\n    a: "${'x'.repeat(100_000)}"\n`), want: { where: 'a: "x', object: 'network/long', field: 'metadata.labels.a', message: /^must NOT have more than 63 characters$/ } },
  { name: 'a label key with spaces', input: net('lk', undefined, '  labels:\n    "not a key": x\n'), want: { where: 'not a key', object: 'network/lk', field: 'metadata.labels.not a key', message: /^"not a key" is not a label key/ } },
  { name: '3 MiB of annotations (fits the file limit, not etcd)', input: net('big', undefined, `  annotations:\n    a: "${'x'.repeat(3 * 1024 * 1024)}"\n`), want: { where: 'annotations:', object: 'network/big', field: 'metadata.annotations', message: /^3145729 bytes in total, over the 262144-byte limit$/ } },
  { name: 'a file over the 4 MiB limit', input: `${net('huge')}# ${'x'.repeat(MAX_MANIFEST_BYTES)}\n`, want: { where: 1, message: /over the 4194304-byte limit/ } },
  { name: 'stdin over the 4 MiB limit, spawned', stdin: true, spawn: true, input: `${net('huge')}# ${'x'.repeat(MAX_MANIFEST_BYTES)}\n`, want: { where: 1, message: /larger than 4194304 bytes/ } },

  // ---- valid documents that the store refuses ---------------------------------------------------------
  { name: 'a Subnet for a network that does not exist', input: sub('ghost', '  network: nowhere\n  cidr: 10.5.30.0/24\n  node: a\n'), want: { where: 'network:', object: 'subnet/ghost', field: 'spec.network', message: /network "nowhere" does not exist/ } },
  { name: 'a Subnet outside its network', input: sub('far', '  network: default\n  cidr: 10.77.1.0/24\n  node: a\n'), want: { where: 'cidr:', object: 'subnet/far', field: 'spec.cidr', message: /is outside network "default"/ } },
  { name: 'a Subnet of the wrong length', input: sub('len', '  network: default\n  cidr: 10.5.30.0/25\n  node: a\n'), want: { where: 'cidr:', object: 'subnet/len', field: 'spec.cidr', message: /must be a \/24/ } },
  { name: 'a reservation overlapping one in etcd', input: sub('steal', '  network: default\n  cidr: 10.5.3.0/24\n  node: thief\n'), want: { where: 'cidr:', object: 'subnet/steal', field: 'spec.cidr', message: /overlaps subnet\/gw-1/ } },
  { name: 'a reservation overlapping a live lease', input: sub('steal', '  network: default\n  cidr: 10.5.12.0/24\n  node: thief\n'), want: { where: 'cidr:', object: 'subnet/steal', field: 'spec.cidr', message: /overlaps the live lease 10\.5\.12\.0-24/ } },
  { name: 'two reservations of one subnet in one file', input: `${sub('r1', '  network: default\n  cidr: 10.5.31.0/24\n  node: a\n')}---\n${sub('r2', '  network: default\n  cidr: 10.5.31.0/24\n  node: b\n')}`, want: { where: { needle: 'cidr:', nth: 2 }, object: 'subnet/r2', field: 'spec.cidr', message: /overlaps subnet\/r1/ } },
  { name: 'a valid Network next to an invalid Subnet', input: `${net('fresh', '  cidr: 10.7.0.0/16\n  backend:\n    type: vxlan\n    vni: 77\n')}---\n${sub('r3', '  network: fresh\n  cidr: 10.8.1.0/24\n  node: a\n')}`, want: { where: { needle: 'cidr:', nth: 2 }, object: 'subnet/r3', field: 'spec.cidr', message: /is outside network "fresh"/ } },

  // ---- IPv6: Networks ---------------------------------------------------------------------------
  { name: 'ipv6Cidr without a prefix', input: net('v6a', '  ipv6Cidr: "fd00:9::"\n  backend: {type: vxlan}\n'), want: { where: 'ipv6Cidr:', object: 'network/v6a', field: 'spec.ipv6Cidr', message: /is not an IPv6 CIDR/ } },
  { name: 'ipv6Cidr with a zone', input: net('v6b', '  ipv6Cidr: "fe80::%eth0/64"\n  backend: {type: vxlan}\n'), want: { where: 'ipv6Cidr:', object: 'network/v6b', field: 'spec.ipv6Cidr', message: /is not an IPv6 CIDR/ } },
  { name: 'ipv6Cidr with a line break and a command', input: net('v6c', '  ipv6Cidr: "fd00:9::/48\\nroute del default"\n  backend: {type: vxlan}\n'), want: { where: 'ipv6Cidr:', object: 'network/v6c', field: 'spec.ipv6Cidr', message: /is not an IPv6 CIDR/ } },
  { name: 'ipv6Cidr that only looks like one (three colons)', input: net('v6d', '  ipv6Cidr: "fd00:::9/48"\n  backend: {type: vxlan}\n'), want: { where: 'ipv6Cidr:', object: 'network/v6d', field: 'spec.ipv6Cidr', message: /^"fd00:::9\/48" is not an IPv6 CIDR/ } },
  { name: 'an IPv4 CIDR as ipv6Cidr', input: net('v6e', '  ipv6Cidr: 10.9.0.0/16\n  backend: {type: vxlan}\n'), want: { where: 'ipv6Cidr:', object: 'network/v6e', field: 'spec.ipv6Cidr', message: /is not an IPv6 CIDR/ } },
  { name: 'ipv6Cidr as a number', input: net('v6f', '  ipv6Cidr: 64\n  backend: {type: vxlan}\n'), want: { where: 'ipv6Cidr:', object: 'network/v6f', field: 'spec.ipv6Cidr', message: /^must be string/ } },
  { name: 'ipv6Cidr with host bits', input: net('v6g', '  ipv6Cidr: fd00:9::1/48\n  backend: {type: vxlan}\n'), want: { where: 'ipv6Cidr:', object: 'network/v6g', field: 'spec.ipv6Cidr', message: /has host bits set; the network address is fd00:9::\/48$/ } },
  { name: 'ipv6Cidr too small', input: net('v6h', '  ipv6Cidr: fd00:9::/125\n  backend: {type: vxlan}\n'), want: { where: 'ipv6Cidr:', object: 'network/v6h', field: 'spec.ipv6Cidr', message: /too small: the prefix must be \/124 or shorter/ } },
  { name: 'ipv6SubnetLength over 126', input: net('v6i', '  ipv6Cidr: fd00:9::/48\n  ipv6SubnetLength: 127\n  backend: {type: vxlan}\n'), want: { where: 'ipv6SubnetLength:', object: 'network/v6i', field: 'spec.ipv6SubnetLength', message: /must be <= 126/ } },
  { name: 'ipv6SubnetLength leaving fewer than four subnets', input: net('v6j', '  ipv6Cidr: fd00:9::/48\n  ipv6SubnetLength: 49\n  backend: {type: vxlan}\n'), want: { where: 'ipv6SubnetLength:', object: 'network/v6j', field: 'spec.ipv6SubnetLength', message: /fewer than four subnets/ } },
  { name: 'ipv6SubnetMin outside the network', input: net('v6k', '  ipv6Cidr: fd00:9::/48\n  ipv6SubnetMin: "fd00:a::"\n  backend: {type: vxlan}\n'), want: { where: 'ipv6SubnetMin:', object: 'network/v6k', field: 'spec.ipv6SubnetMin', message: /is outside the network fd00:9::\/48/ } },
  { name: 'ipv6SubnetMax not aligned', input: net('v6l', '  ipv6Cidr: fd00:9::/48\n  ipv6SubnetMax: "fd00:9:0:5::1"\n  backend: {type: vxlan}\n'), want: { where: 'ipv6SubnetMax:', object: 'network/v6l', field: 'spec.ipv6SubnetMax', message: /is not aligned to \/64 subnets/ } },
  { name: 'ipv6SubnetMin with a space and a word', input: net('v6m', '  ipv6Cidr: fd00:9::/48\n  ipv6SubnetMin: "fd00:9:0:1:: dev lo"\n  backend: {type: vxlan}\n'), want: { where: 'ipv6SubnetMin:', object: 'network/v6m', field: 'spec.ipv6SubnetMin', message: /is not an IPv6 address/ } },
  { name: 'neither cidr nor ipv6Cidr', input: net('v6n', '  backend: {type: vxlan}\n'), want: { where: 'spec:', object: 'network/v6n', field: 'spec.cidr', message: /^is required \(or spec\.ipv6Cidr/ } },
  { name: 'IPv6 range fields without ipv6Cidr', input: net('v6o', '  cidr: 10.9.0.0/16\n  ipv6SubnetLength: 64\n  backend: {type: vxlan}\n'), want: { where: 'ipv6SubnetLength:', object: 'network/v6o', field: 'spec.ipv6SubnetLength', message: /applies to the IPv6 network/ } },
  { name: 'an unknown IPv6 field', input: net('v6p', '  ipv6Cidr: fd00:9::/48\n  ipv6Network: fd00:9::/48\n  backend: {type: vxlan}\n'), want: { where: 'ipv6Network:', object: 'network/v6p', field: 'spec.ipv6Network', message: /^unknown field; known fields: cidr, .*ipv6Cidr/ } },

  // ---- IPv6: Subnets and Leases ------------------------------------------------------------------
  { name: 'a dual-stack reservation without its IPv6 subnet', input: sub('d1', '  network: dual\n  cidr: 10.9.5.0/24\n  node: a\n'), want: { where: 'spec:', object: 'subnet/d1', field: 'spec.ipv6Cidr', message: /^is required: network "dual" has an IPv6 range/ } },
  { name: 'a reservation with neither subnet', input: sub('d2', '  network: dual\n  node: a\n'), want: { where: 'spec:', object: 'subnet/d2', field: 'spec.cidr', message: /^is required \(or spec\.ipv6Cidr/ } },
  { name: 'a reservation ipv6Cidr with host bits', input: sub('d3', '  network: dual\n  cidr: 10.9.5.0/24\n  ipv6Cidr: fd00:9:0:5::1/64\n  node: a\n'), want: { where: 'ipv6Cidr:', object: 'subnet/d3', field: 'spec.ipv6Cidr', message: /has host bits set; the subnet address is fd00:9:0:5::\/64/ } },
  { name: 'a reservation ipv6Cidr overlapping another reservation', input: sub('d4', '  network: dual\n  cidr: 10.9.5.0/24\n  ipv6Cidr: fd00:9:0:3::/64\n  node: a\n'), want: { where: 'ipv6Cidr:', object: 'subnet/d4', field: 'spec.ipv6Cidr', message: /overlaps subnet\/gw-6/ } },
  { name: 'a reservation ipv6Cidr overlapping a live dual-stack lease', input: sub('d5', '  network: dual\n  cidr: 10.9.5.0/24\n  ipv6Cidr: fd00:9:0:12::/64\n  node: a\n'), want: { where: 'ipv6Cidr:', object: 'subnet/d5', field: 'spec.ipv6Cidr', message: /overlaps the live lease 10\.9\.12\.0-24&fd00:9:0:12::-64 held by node h12/ } },
  { name: 'a reservation ipv6Cidr of the wrong length', input: sub('d6', '  network: dual\n  cidr: 10.9.5.0/24\n  ipv6Cidr: fd00:9:0:5::/80\n  node: a\n'), want: { where: 'ipv6Cidr:', object: 'subnet/d6', field: 'spec.ipv6Cidr', message: /must be a \/64, the ipv6SubnetLength/ } },
  { name: 'an ipv6Cidr in an IPv4-only network', input: sub('d7', '  network: default\n  cidr: 10.5.40.0/24\n  ipv6Cidr: fd00:5:0:40::/64\n  node: a\n'), want: { where: 'ipv6Cidr:', object: 'subnet/d7', field: 'spec.ipv6Cidr', message: /has no IPv6 range/ } },
  { name: 'a publicIP in an IPv6-only network', input: sub('d8', '  network: six\n  ipv6Cidr: fd00:6:0:8::/64\n  publicIP: 192.0.2.8\n'), want: { where: 'publicIP:', object: 'subnet/d8', field: 'spec.publicIP', message: /is IPv6-only: its hosts are matched by node or publicIPv6/ } },
  { name: 'a cidr in an IPv6-only network', input: sub('d9', '  network: six\n  cidr: 10.9.9.0/24\n  ipv6Cidr: fd00:6:0:9::/64\n  node: a\n'), want: { where: 'cidr:', object: 'subnet/d9', field: 'spec.cidr', message: /is IPv6-only; reserve its IPv6 subnet with spec\.ipv6Cidr/ } },
  { name: 'a publicIPv6 that only looks like an address', input: sub('d10', '  network: six\n  ipv6Cidr: fd00:6:0:10::/64\n  publicIPv6: "fd00:::1"\n'), want: { where: 'publicIPv6:', object: 'subnet/d10', field: 'spec.publicIPv6', message: /^"fd00:::1" is not an IPv6 address$/ } },
  { name: 'a publicIPv6 with a zone', input: sub('d11', '  network: six\n  ipv6Cidr: fd00:6:0:11::/64\n  publicIPv6: "fe80::1%eth0"\n'), want: { where: 'publicIPv6:', object: 'subnet/d11', field: 'spec.publicIPv6', message: /is not an IPv6 address/ } },
  { name: 'a Lease named by its raw dual-stack key (not a DNS name)', input: `${API}\nkind: Lease\nmetadata: {name: "10.9.40.0-24&fd00:9:0:40::-64"}\nspec: {network: dual, subnet: 10.9.40.0/24, ipv6Subnet: "fd00:9:0:40::/64", publicIP: 192.0.2.1, backend: {type: vxlan}}\n`, want: { where: 'metadata:', object: 'lease/10.9.40.0-24&fd00:9:0:40::-64', field: 'metadata.name', message: /is not a DNS subdomain name/ } },
  { name: 'a Lease named like a mapped key but naming none', input: `${API}\nkind: Lease\nmetadata: {name: fd00-9-0-40-0-0-0-64}\nspec: {network: six, ipv6Subnet: "fd00:9:0:40::/64", backend: {type: vxlan}}\n`, want: { where: 'metadata:', object: 'lease/fd00-9-0-40-0-0-0-64', field: 'metadata.name', message: /is not a lease key like 10\.5\.3\.0-24/ } },
  { name: 'a dual-stack Lease under its mapped name, which only agents write', input: `${API}\nkind: Lease\nmetadata: {name: 10.9.40.0-24.fd00-9-0-40-0-0-0-0-64}\nspec: {network: dual, subnet: 10.9.40.0/24, ipv6Subnet: "fd00:9:0:40::/64", publicIP: 192.0.2.1, publicIPv6: "2001:db8::1", backend: {type: vxlan, ipv6VtepMAC: "ca:11:22:33:44:55"}}\n`, want: { where: 'kind:', object: 'lease/10.9.40.0-24.fd00-9-0-40-0-0-0-0-64', field: 'kind', message: /cannot be applied/ } },
];

function lineOf(text: string, where: Where): number {
  if (typeof where === 'number') return where;
  const { needle, nth } = typeof where === 'string' ? { needle: where, nth: 1 } : where;
  let seen = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) if (lines[i]!.includes(needle) && ++seen === nth) return i + 1;
  throw new Error(`"${needle}" #${nth} is not in the input`);
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('weft apply with hostile manifests', () => {
  const fx = useEtcd();
  let dir: string;
  let prefix: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-hostile-yaml-'));
    prefix = testPrefix('hostile');
    const setup = [
      net('default', '  cidr: 10.5.0.0/16\n  backend: {type: vxlan}\n'),
      sub('gw-1', '  network: default\n  cidr: 10.5.3.0/24\n  node: gw-1\n'),
      // A dual-stack and an IPv6-only network, a dual-stack reservation and lease.
      // Each vxlan Network its own VNI: apply refuses a VNI another Network uses.
      net('dual', '  cidr: 10.9.0.0/16\n  ipv6Cidr: fd00:9::/48\n  backend: {type: vxlan, vni: 9}\n'),
      net('six', '  ipv6Cidr: fd00:6::/48\n  backend: {type: vxlan, vni: 6}\n'),
      sub('gw-6', '  network: dual\n  cidr: 10.9.3.0/24\n  ipv6Cidr: fd00:9:0:3::/64\n  node: gw-6\n'),
    ].join('---\n');
    const r = await weft(['apply', '-f', '-', ...etcdFlags(fx.etcd.endpoint, prefix)], { stdin: setup });
    expect(r.stderr).toBe('');
    const lease = fx.admin.client.lease(600, { autoKeepAlive: false });
    await lease.put(`${prefix}/subnets/10.5.12.0-24`).value('{"PublicIP":"192.0.2.12","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},"NodeName":"h12"}');
    await lease.put(`${prefix}/dual/subnets/10.9.12.0-24&fd00:9:0:12::-64`).value('{"PublicIP":"192.0.2.12","PublicIPv6":"2001:db8::12","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},"BackendV6Data":{"VNI":1,"VtepMAC":"ca:11:22:33:44:55"},"NodeName":"h12"}');
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Every key in etcd with its value bytes and revisions, and the store's revision. */
  async function dumpAll(): Promise<string> {
    const res = await fx.admin.client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
    const kvs = res.kvs.map((kv) => [kv.key.toString('base64'), kv.value.toString('base64'), String(kv.mod_revision), String(kv.version), String(kv.lease)]);
    return JSON.stringify({ revision: String(res.header.revision), kvs });
  }

  async function run(c: Case, file: string): Promise<CliResult> {
    const flags = etcdFlags(fx.etcd.endpoint, prefix);
    const args = ['apply', '-f', c.stdin ? '-' : file, ...flags];
    if (c.spawn) {
      // The real process, with stdin fed as the raw bytes (not decoded and re-encoded here).
      const p = await execa('node', [BIN, ...args], { reject: false, input: c.stdin ? c.input : '', timeout: 30_000, env: { PATH: process.env.PATH ?? '' }, extendEnv: false });
      return { code: p.exitCode ?? -1, stdout: p.stdout, stderr: p.stderr };
    }
    return weft(args, c.stdin ? { stdin: c.input.toString() } : {});
  }

  it(`refuses all ${CASES.length} inputs with exit code 1 and FILE:LINE: [kind/name: field:] message, writing nothing`, async () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
    const before = await dumpAll();
    expect(before).toContain(Buffer.from(`${prefix}/subnets/10.5.12.0-24`).toString('base64'));
    const failures: string[] = [];
    const started = Date.now();
    for (const [i, c] of CASES.entries()) {
      const file = join(dir, `${String(i).padStart(2, '0')}.${c.ext ?? 'yaml'}`);
      if (!c.stdin) writeFileSync(file, c.input);
      const pre = await dumpAll();
      const r = await run(c, file);
      const shown = c.stdin ? '<stdin>' : file;
      const text = c.input.toString('latin1' as BufferEncoding);
      const w = c.want;
      const prefixText = `${shown}:${lineOf(typeof c.input === 'string' ? c.input : text, w.where)}: ${w.object ? w.object + ': ' : ''}${w.field ? w.field + ': ' : ''}`;
      const lines = r.stderr.split('\n').filter(Boolean);
      const hit = lines.some((l) => l.startsWith(prefixText) && w.message.test(l.slice(prefixText.length)));
      const wellFormed = lines.every((l) => new RegExp(`^${escapeRe(shown)}:\\d+: `).test(l));
      const after = await dumpAll();
      if (r.code !== 1 || r.stdout !== '' || !hit || !wellFormed || after !== pre) {
        failures.push(
          `#${i} ${c.name}: code ${r.code}, stdout ${JSON.stringify(r.stdout.slice(0, 200))}, etcd ${after === pre ? 'unchanged' : 'CHANGED'}\n` +
            `  want: ${prefixText}${w.message}\n  got:  ${lines.map((l) => l.slice(0, 300)).join('\n        ')}`,
        );
      }
    }
    console.log(`hostile YAML: ${CASES.length} inputs tried (${CASES.filter((c) => c.spawn).length} through the spawned CLI), ${CASES.length - failures.length} refused as expected, in ${Date.now() - started} ms`);
    expect(failures, failures.join('\n')).toEqual([]);
    expect(await dumpAll()).toBe(before);
  });
});
