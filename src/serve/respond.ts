// Writing answers: JSON bodies, Status errors, Warning headers, bounded request bodies.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_MANIFEST_BYTES } from '../api/manifest.js';
import { ApiError, statusOf } from './status.js';

export function sendJson(res: ServerResponse, code: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendStatus(res: ServerResponse, err: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const retry = err.details?.retryAfterSeconds;
  sendJson(res, err.code, statusOf(err), {
    ...(retry !== undefined ? { 'Retry-After': String(retry) } : {}),
    ...(err.code === 401 ? { 'WWW-Authenticate': 'Bearer realm="weft"' } : {}),
  });
}

/** Kubernetes' Warning header (RFC 7234 form, code 299), one per message. */
export function warningHeaders(messages: string[]): Record<string, string[]> {
  if (!messages.length) return {};
  return { Warning: messages.map((m) => `299 - ${JSON.stringify(m.replace(/[^\x20-\x7e]/g, '?'))}`) };
}

/** The whole body, refused past the manifest size limit (the CLI's limit). */
export async function readBody(req: IncomingMessage, limit = MAX_MANIFEST_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new ApiError(413, 'RequestEntityTooLarge', `the request body is larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
