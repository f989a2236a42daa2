// decodeLease reads a value whose keys are all Flannel's names, spelled exactly so, directly
// (every lease an agent lists at start-up is); any other key set goes through goField, as Go's
// encoding/json reads it. The two must agree: random values in random spellings, each decoded
// as it is and with an unknown key added to each object (which sends every field through
// goField), plus the cases a wrong direct read would get wrong.
import { describe, expect, it } from 'vitest';
import { decodeLease } from '../../src/api/lease.js';

function rng(seed: number) {
  return (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return (seed >>> 8) % n;
  };
}

type Rand = (n: number) => number;
const pick = <T>(rand: Rand, list: readonly T[]): T => list[rand(list.length)]!;

/** Whether every name spell() gave since the last reset was exact. */
let allExact = true;

/** A spelling of a field name: mostly exact; else random case, with the Kelvin sign for a k. */
function spell(field: string, rand: Rand): string {
  if (rand(4) !== 0) return field;
  allExact = false;
  let out = '';
  for (const ch of field) {
    const r = rand(8);
    if ((ch === 'k' || ch === 'K') && r < 3) out += '\u212a';
    else out += r < 4 ? ch.toUpperCase() : ch.toLowerCase();
  }
  return out;
}

const VALUES: Record<string, readonly string[]> = {
  PublicIP: ['"198.18.0.1"', '"0.0.0.0"', '"255.255.255.255"', '"10.0.0.01"', 'null', '7'],
  PublicIPv6: ['null', '"fd00:5:0:34::1"', '"FD00:5::1"', '"fd00::1::2"', '""'],
  BackendType: ['"vxlan"', '"vxlan"', '"host-gw"', '""', '"VXLAN"', '1'],
  NodeName: ['"node-1"', '""', '"-bad"', 'null'],
  VNI: ['1', '4096', '16777216', '-1', '1.5', '"1"'],
  VtepMAC: ['"02:00:00:00:13:88"', '"02:AA:00:00:13:88"', '"03:00:00:00:13:88"', '"00:00:00:00:00:00"', '"02:00"'],
};

/** A field's value text: half the time the first (valid) one, so that many values decode. */
const valueOf = (rand: Rand, field: string): string => (rand(2) ? VALUES[field]![0]! : pick(rand, VALUES[field]!));

/** JSON object text from [key, value text] pairs: duplicates stay, as etcd could hold them. */
const object = (pairs: [string, string][]): string => `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;

function vxlanData(rand: Rand, extra: boolean): string {
  const pairs: [string, string][] = [];
  for (let j = 0, n = 1 + rand(3); j < n; j++) {
    const f = pick(rand, ['VNI', 'VtepMAC', 'VNI', 'VtepMAC']);
    pairs.push([spell(f, rand), valueOf(rand, f)]);
  }
  const at = rand(pairs.length + 1); // drawn either way: both texts make the same choices
  if (extra) pairs.splice(at, 0, ['Extra', '0']);
  return object(pairs);
}

/**
 * A random lease value, the same value with an unknown key in each of its objects, and whether
 * the first one's keys are all spelled exactly.
 */
function randomLease(rand: Rand): [string, string, boolean] {
  // Usually the fields a vxlan lease needs, then a few more (some again).
  const fields = rand(3) ? ['PublicIP', 'BackendType', 'BackendData'] : [];
  for (let j = 0, n = 1 + rand(4); j < n; j++) fields.push(pick(rand, ['PublicIP', 'PublicIPv6', 'BackendType', 'BackendData', 'BackendV6Data', 'NodeName']));
  const seed = rand(1 << 30);
  const build = (extra: boolean) => {
    const r = rng(seed); // the same choices for both texts
    const pairs: [string, string][] = fields.map((f) => [spell(f, r), f === 'BackendData' || f === 'BackendV6Data' ? (r(6) === 0 ? 'null' : vxlanData(r, extra)) : valueOf(r, f)]);
    const at = r(pairs.length + 1);
    if (extra) pairs.splice(at, 0, ['Extra', '"x"']);
    return object(pairs);
  };
  allExact = true;
  const text = build(false);
  const exact = allExact;
  return [text, build(true), exact];
}

describe('decodeLease, direct read of canonical keys', () => {
  it('decodes 20,000 random values as goField does', () => {
    const rand = rng(5);
    let accepted = 0;
    let canonical = 0;
    for (let i = 0; i < 20_000; i++) {
      const [text, viaGoField, exact] = randomLease(rand);
      const got = decodeLease(text);
      expect([text, got]).toEqual([text, decodeLease(viaGoField)]);
      if (got.ok) accepted++;
      if (exact && got.ok) canonical++;
    }
    // Both outcomes and both paths are reached.
    expect(accepted).toBeGreaterThan(500);
    expect(accepted).toBeLessThan(19_500);
    expect(canonical).toBeGreaterThan(800);
  });

  it('reads other spellings as Go does: any case, the last match winning, the Kelvin sign', () => {
    const mac = '{"VNI":1,"VtepMAC":"02:00:00:00:13:88"}';
    const lower = decodeLease(`{"publicip":"198.18.0.1","backendtype":"vxlan","backenddata":${mac}}`);
    expect(lower.ok && lower.value).toMatchObject({ publicIP: '198.18.0.1', backendType: 'vxlan', backendData: { VNI: 1 } });
    const mixed = decodeLease(`{"PublicIP":"198.18.0.1","PUBLICIP":"198.18.0.2","BackendType":"vxlan","BackendData":${mac},"Bac\u212aendData":{"vni":2,"vtepmac":"02:00:00:00:00:02"}}`);
    expect(mixed.ok && mixed.value).toMatchObject({ publicIP: '198.18.0.2', backendData: { VNI: 2, VtepMAC: '02:00:00:00:00:02' } });
    const twice = decodeLease(`{"PublicIP":"198.18.0.1","PublicIP":"198.18.0.3","BackendType":"vxlan","BackendData":${mac}}`);
    expect(twice.ok && twice.value.publicIP).toBe('198.18.0.3');
    const kelvin = decodeLease(`{"PublicIP":"198.18.0.1","Bac\u212aendType":"vxlan","BackendData":{"VNI":3,"VtepMAC":"02:00:00:00:13:88"}}`);
    expect(kelvin.ok && kelvin.value).toMatchObject({ backendType: 'vxlan', backendData: { VNI: 3 } });
    // A lower-case spelling beside the exact one: the later key wins, whichever it is.
    const late = decodeLease(`{"PublicIP":"198.18.0.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:13:88","vni":9}}`);
    expect(late.ok && late.value.backendData?.VNI).toBe(9);
  });

  it('refuses, through either path, what is not a lease', () => {
    const bad = decodeLease('{"PublicIP":"198.18.0.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"03:00:00:00:13:88"}}');
    expect(bad).toEqual({ ok: false, error: 'BackendData.VtepMAC "03:00:00:00:13:88" is not a unicast MAC' });
    expect(decodeLease('{"publicip":"198.18.0.01"}')).toEqual({ ok: false, error: 'PublicIP "198.18.0.01" is not an IPv4 address' });
    expect(decodeLease('{"PublicIP":"198.18.0.1","BackendType":"vxlan"}')).toEqual({ ok: false, error: 'vxlan lease has no BackendData object' });
  });
});
