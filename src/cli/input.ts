// Reading `-f FILE|DIR|-` inputs: files as given, directories' .yaml/.yml/.json files in
// name order (recursively with -R), "-" for stdin.
import { isUtf8 } from 'node:buffer';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NotFoundError, ValidationError } from '../api/errors.js';
import { MAX_MANIFEST_BYTES } from '../api/manifest.js';

const MANIFEST_FILE = /\.(ya?ml|json)$/;

export interface Input {
  file: string;
  text: string;
}

export async function readInputs(paths: string[], recursive: boolean, readStdin: () => Promise<string | Uint8Array>): Promise<Input[]> {
  const out: Input[] = [];
  for (const p of paths) {
    if (p === '-') {
      const data = await readStdin();
      if (typeof data !== 'string' && data.byteLength > MAX_MANIFEST_BYTES) {
        throw new ValidationError([{ file: '<stdin>', line: 1, field: '', message: `input is larger than ${MAX_MANIFEST_BYTES} bytes` }]);
      }
      out.push({ file: '<stdin>', text: typeof data === 'string' ? data : decodeUtf8(data, '<stdin>') });
      continue;
    }
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new NotFoundError(`the path "${p}" does not exist`);
    }
    if (st.isDirectory()) {
      for (const f of listDir(p, recursive)) out.push({ file: f, text: readText(f) });
    } else {
      out.push({ file: p, text: readText(p) });
    }
  }
  return out;
}

function listDir(dir: string, recursive: boolean): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (recursive) out.push(...listDir(path, true));
    } else if (MANIFEST_FILE.test(entry.name)) {
      out.push(path);
    }
  }
  return out;
}

function readText(file: string): string {
  const size = statSync(file).size;
  if (size > MAX_MANIFEST_BYTES) {
    throw new ValidationError([{ file, line: 1, field: '', message: `file is ${size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit` }]);
  }
  return decodeUtf8(readFileSync(file), file);
}

/**
 * Manifests are UTF-8. A lenient decode would turn bad bytes into U+FFFD and store them;
 * refuse them instead, at the line of the first one.
 */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = buf.toString('utf8');
  if (isUtf8(buf)) return text;
  // Up to the first bad sequence every character decoded exactly, so byte offsets add up;
  // the first U+FFFD that is not a literal EF BF BD in the input is where it went wrong.
  let offset = 0;
  let line = 1;
  for (const ch of text) {
    const genuine = buf[offset] === 0xef && buf[offset + 1] === 0xbf && buf[offset + 2] === 0xbd;
    if (ch === '\uFFFD' && !genuine) break;
    if (ch === '\n') line++;
    offset += Buffer.byteLength(ch);
  }
  throw new ValidationError([{ file, line, field: '', message: `input is not valid UTF-8 (byte ${offset + 1})` }]);
}
