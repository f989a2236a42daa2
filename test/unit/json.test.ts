// The one reader of untrusted JSON objects (flanneld's config parser keeps flanneld's own
// messages, src/api/network.ts), and the meta reader built on it.
import { describe, expect, it } from 'vitest';
import { parseNetworkMeta } from '../../src/api/convert.js';
import { parseJsonObject } from '../../src/api/json.js';

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
