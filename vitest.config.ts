import { defineConfig } from 'vitest/config';

// Native suites run in forked processes so a native fault fails one file, not the runner.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/pack/**'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
