// Where the repository is, found from this module's own location so that the same code works
// from src/testbed (vitest runs the TypeScript) and from dist/testbed (`make demo` runs plain node).
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WEFT_BIN = resolve(REPO_ROOT, 'bin', 'weft');
