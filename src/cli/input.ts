// Reading `-f FILE|DIR|-` inputs: files as given, directories' .yaml/.yml/.json files in
// name order (recursively with -R), "-" for stdin.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NotFoundError, ValidationError } from '../api/errors.js';
import { MAX_MANIFEST_BYTES } from '../api/manifest.js';

const MANIFEST_FILE = /\.(ya?ml|json)$/;

export interface Input {
  file: string;
  text: string;
}

export async function readInputs(paths: string[], recursive: boolean, readStdin: () => Promise<string>): Promise<Input[]> {
  const out: Input[] = [];
  for (const p of paths) {
    if (p === '-') {
      out.push({ file: '<stdin>', text: await readStdin() });
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
  return readFileSync(file, 'utf8');
}
