/** The ceiling of the persistence scenarios: the worker's rows inserted by hand, as plainly as PostgreSQL takes them. */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { QueuedEvent } from '../../../src/events/queue-message.js';
import { cpuMeter } from '../../support/cpu.js';
import { eventColumns } from '../../support/event-columns.js';
import { seconds } from '../log.js';
import { postgresPidsOf } from '../measure.js';

// The payloads as one JSON array: measured 17 % faster than a jsonb[] parameter (whose elements
// the driver escapes and the server unescapes), so the ceiling uses it, as insertBatch does.
export const RAW_INSERT = `
INSERT INTO audit_events_raw (id, event_type, session_id, payload, client_time, received_at, api_key_id)
SELECT u.id, u.event_type, u.session_id, p.payload, u.client_time, u.received_at, u.api_key_id
FROM unnest($1::uuid[], $2::text[], $3::text[], $5::timestamptz[], $6::timestamptz[], $7::text[])
  WITH ORDINALITY AS u(id, event_type, session_id, client_time, received_at, api_key_id, n)
JOIN jsonb_array_elements($4::jsonb) WITH ORDINALITY AS p(payload, n) ON p.n = u.n`;

/** The ceiling: the same rows, in batches, one plain statement each (autocommit), one connection. */
export async function rawInsert(
  admin: pg.Pool,
  client: pg.Client,
  database: string,
  events: readonly QueuedEvent[],
  batch: number,
) {
  const postgres = await postgresPidsOf(admin, database);
  const meter = cpuMeter([
    { label: 'postgres', pids: postgres.pids },
    { label: 'bench (node)', pids: () => [process.pid] },
  ]);
  const started = performance.now();
  for (let from = 0; from < events.length; from += batch) {
    const slice = events.slice(from, from + batch);
    await client.query(RAW_INSERT, eventColumns(slice, 'json array'));
  }
  const elapsed = seconds(started);
  const cpu = meter.stop();
  postgres.stop();
  return { seconds: elapsed, eventsPerSecond: events.length / elapsed, cpu };
}
