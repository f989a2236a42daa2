// Plain HTTPS requests to a weft serve (what kubectl cannot send: no credentials at all,
// exact headers, watch streams read line by line).
import { request } from 'node:https';

export interface ApiAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => Record<string, unknown>;
}

export function apiRequest(
  base: string,
  ca: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; contentType?: string; accept?: string; timeoutMs?: number } = {},
): Promise<ApiAnswer> {
  const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${path}`,
      {
        method,
        ca,
        headers: {
          ...(opts.token ? { Authorization: `Bearer ${opts.token}` } : {}),
          ...(body !== undefined ? { 'Content-Type': opts.contentType ?? 'application/json', 'Content-Length': String(Buffer.byteLength(body)) } : {}),
          ...(opts.accept ? { Accept: opts.accept } : {}),
        },
        timeout: opts.timeoutMs ?? 15_000,
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer`)));
    req.on('error', reject);
    req.end(body);
  });
}
