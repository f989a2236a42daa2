import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Multi-host tests program real kernels and spawn agents; two at a time is what 2 cores take.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
