import { defineConfig } from 'vitest/config';

/**
 * The fault suite (`npm run test:faults`): each file starts its own PostgreSQL
 * cluster and Redis and breaks them under load, so it runs apart from
 * `npm test`. Two files at a time on a two-core machine keeps the whole suite
 * within a few minutes (the PostgreSQL outage and the overload take a minute
 * each) without starving the processes whose latency the cases measure.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    fileParallelism: true,
  },
});
