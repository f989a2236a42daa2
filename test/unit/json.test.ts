// The one reader of untrusted JSON objects (flanneld's config parser keeps flanneld's own
// messages, src/api/network.ts), the meta reader built on it, and the one field-list encoder
// (pickFields) behind every record weft writes and the resources it shows.
import { describe, expect, it } from 'vitest';
import { encodeNetworkMeta, encodeSubnetMeta, networkFromStore, nodeFromStore, parseNetworkMeta } from '../../src/api/convert.js';
import { parseJsonObject, pickFields } from '../../src/api/json.js';
import type { KV } from '../../src/api/records.js';

describe('parseJsonObject', () => {
  it('accepts an object and refuses other JSON, bad JSON and oversized text before parsing', () => {
    expect(parseJsonObject('{"a":1}', 100)).toEqual({ ok: true, value: { a: 1 } });
    for (const text of ['[]', 'null', '3', '"x"']) expect(parseJsonObject(text, 100)).toEqual({ ok: false, error: 'value is not a JSON object' });
    expect(parseJsonObject('{', 100, 'config')).toMatchObject({ ok: false, error: expect.stringMatching(/^config is not valid JSON: /) });
    expect(parseJsonObject(`{"a":"${'x'.repeat(200)}"}`, 100)).toEqual({ ok: false, error: 'value is 208 bytes, over 100' });
  });

  it('serves the meta reader (undefined for anything but an object of the right size)', () => {
    expect(parseNetworkMeta('[]')).toBeUndefined();
    expect(parseNetworkMeta(`{"uid":"${'x'.repeat(70_000)}"}`)).toBeUndefined();
    // A hostile meta value: fields of the wrong type are dropped, not passed on.
    expect(parseNetworkMeta('{"uid":7,"leaseTTL":5,"labels":{"a":"b","c":1}}')).toEqual({ uid: '', creationTimestamp: '', generation: 1, labels: { a: 'b' } });
  });
});

describe('pickFields', () => {
  it('keeps the listed fields in list order, leaves out an undefined optional one and nothing else', () => {
    const record = { c: 3, b: undefined as number | undefined, a: 1, d: undefined as string | undefined, extra: 'x' };
    const picked = pickFields(record, ['a', 'b?', 'c', 'd']);
    expect(Object.keys(picked)).toEqual(['a', 'c', 'd']);
    expect(JSON.stringify(picked)).toBe('{"a":1,"c":3}');
    expect(JSON.stringify(pickFields({ b: 0, a: false }, ['a?', 'b?']))).toBe('{"a":false,"b":0}');
  });

  it('writes the metas byte for byte as before: spec fields, then uid, times, labels and annotations (empty maps included)', () => {
    const t = '2026-01-01T00:00:00Z';
    expect(encodeSubnetMeta({ network: 'default', cidr: '10.5.3.0/24', node: 'gw-1', uid: 'u1', creationTimestamp: t, generation: 2, labels: { a: 'b' } })).toBe(
      `{"network":"default","cidr":"10.5.3.0/24","node":"gw-1","uid":"u1","creationTimestamp":"${t}","generation":2,"labels":{"a":"b"},"annotations":{}}`,
    );
    expect(encodeNetworkMeta({ uid: 'u2', creationTimestamp: t, generation: 1, annotations: { x: 'y' }, leaseTTL: '24h' })).toBe(
      `{"uid":"u2","creationTimestamp":"${t}","generation":1,"labels":{},"annotations":{"x":"y"},"leaseTTL":"24h"}`,
    );
    expect(encodeNetworkMeta({ uid: 'u2', creationTimestamp: t, generation: 1 })).toBe(`{"uid":"u2","creationTimestamp":"${t}","generation":1,"labels":{},"annotations":{}}`);
  });

  it('shows a Network spec and a Node status in their fixed order, whatever order the record had', () => {
    const config = JSON.stringify({ Backend: { GBP: true, Type: 'vxlan', VNI: 4 }, SubnetLen: 24, Network: '10.5.0.0/16' });
    const kv: KV = { key: '/coreos.com/network/config', value: config, modRevision: 7, createRevision: 1, version: 1, leaseId: '0' };
    const view = networkFromStore('default', kv, { uid: 'u', creationTimestamp: 't', generation: 1, leaseTTL: '1h' }, []);
    expect(JSON.stringify(view.resource.spec)).toBe('{"cidr":"10.5.0.0/16","subnetLength":24,"backend":{"type":"vxlan","vni":4,"gbp":true},"leaseTTL":"1h"}');
    const status = {
      publishedAt: '2026-01-01T00:00:01Z', v: 1 as const, nodeName: 'h1', network: 'default', subnet: '10.5.3.0/24', lease: '10.5.3.0-24', publicIP: '192.0.2.1',
      peers: { desired: 2, programmed: 2, skipped: 0 }, ready: false, reason: 'r', version: '0.1.0', startedAt: '2026-01-01T00:00:00.123Z',
    };
    const node = nodeFromStore({ name: 'h1', network: 'default', kv: { ...kv, modRevision: 9 }, status: { ok: true, value: status } }, true);
    expect(JSON.stringify(node.status)).toBe(
      '{"network":"default","ready":false,"reason":"r","lease":"10.5.3.0-24","leaseFound":true,"subnet":"10.5.3.0/24","publicIP":"192.0.2.1",' +
        '"peers":{"desired":2,"programmed":2,"skipped":0},"version":"0.1.0","startedAt":"2026-01-01T00:00:00.123Z","publishedAt":"2026-01-01T00:00:01Z"}',
    );
  });
});
