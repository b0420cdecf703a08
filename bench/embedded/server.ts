/**
 * `auditgraph all` in embedded mode for bench/embedded/run.ts, as the CLI starts it, with one
 * switch the CLI does not have: BENCH_QUEUE=memory keeps the queue in memory (the embedded mode
 * before the on-disk queue), BENCH_QUEUE=disk (the default) is what `npm start` runs.
 * BENCH_ROLE=serve runs no worker, so the figures are the API's and its queue's alone (the CLI refuses
 * `serve` in embedded mode, as nothing would ever store the events; a benchmark needs no storing).
 * Configuration comes from the environment as for the CLI (AUDITGRAPH_DATA_DIR, ports, ADMIN_API_KEY…).
 *
 *   BENCH_QUEUE=memory AUDITGRAPH_DATA_DIR=/tmp/x ADMIN_API_KEY=... node --import tsx bench/embedded/server.ts
 */
import { startAuditgraph } from '../../src/app/start.js';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { digestSecret, SCOPES } from '../../src/security/authenticate.js';

const volatileQueue = process.env.BENCH_QUEUE === 'memory';
const role = process.env.BENCH_ROLE === 'serve' ? 'serve' : 'all';
const config = loadConfig(process.env);
const adminKey = config.auth.adminApiKey;
if (adminKey === undefined) throw new Error('ADMIN_API_KEY is required');
const running = await startAuditgraph({
  role,
  config,
  logger: createLogger({ level: config.logLevel }),
  keys: [{ id: 'admin', scopes: SCOPES, sha256: digestSecret(adminKey) }],
  volatileQueue,
});
console.log(
  `embedded ${role} (${volatileQueue ? 'memory' : 'disk'} queue) listening on ${running.ports.join(', ')}`,
);
const stop = () => {
  void running.stop().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
