import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['./test/setup-umask.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests start real registries and cosign processes; two cores.
    maxWorkers: 2,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
