import { defineConfig } from 'vitest/config';

// The pack-and-install test: slow (npm pack + npm install), run by .ci/run after the build.
export default defineConfig({
  test: {
    include: ['test/pack/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 300_000,
  },
});
