// weft's version, as package.json states it: what `weft version` prints and what each agent
// publishes in its node status record.
import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function weftVersion(): string {
  if (cached !== undefined) return cached;
  try {
    // src/version.ts and dist/version.js both sit one level below the package root.
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    cached = typeof pkg.version === 'string' && pkg.version ? pkg.version : 'unknown';
  } catch {
    cached = 'unknown';
  }
  return cached;
}
