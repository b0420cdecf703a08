// The event insert's SQL (run by src/store/event-writer.ts): the statement sent alone under the
// write lease, and the checked path's, which looks up stored ids first.

// Every value explicit: seq, the leaf and persisted_at are fixed before the statement, because
// the leaf hash covers them. The leaves go in by the same statement as the events, so one round
// trip writes both.
// A batch's positions and leaf indexes are consecutive, so they travel as their first values and
// each row adds its ordinal: two fewer arrays for the driver to escape and the server to parse.
// `condition`: a WHERE clause on the rows, which the leased statement adds.
const insertLeavesCte = (condition = '') => `leaves AS (
  INSERT INTO audit_log_leaves (leaf_index, seq, event_id, leaf_hash)
  SELECT $9::bigint + l.n - 1, $2::bigint + l.n - 1, l.event_id, substring($10::bytea FROM l.n::int * 32 - 31 FOR 32)
  FROM unnest($1::uuid[]) WITH ORDINALITY AS l(event_id, n)${condition}
)`;
const INSERT_BATCH = `
INSERT INTO audit_events (id, seq, event_type, session_id, payload, client_time, received_at, persisted_at, api_key_id)
SELECT u.id, $2::bigint + u.n - 1, u.event_type, u.session_id, p.payload, u.client_time, u.received_at, $8::timestamptz, u.api_key_id
FROM unnest($1::uuid[], $3::text[], $4::text[], $6::timestamptz[], $7::timestamptz[], $11::text[])
  WITH ORDINALITY AS u(id, event_type, session_id, client_time, received_at, api_key_id, n)
-- The payloads come as one JSON array: as a jsonb[] literal, every quote in them would be escaped
-- by the driver and unescaped by the server.
JOIN jsonb_array_elements($5::jsonb) WITH ORDINALITY AS p(payload, n) ON p.n = u.n`;

/**
 * The insert statement: leaves and events together. The analytics rollups are
 * not maintained here but folded in after commit (createRollupFolder in src/store/rollup-folder.ts),
 * outside the lock that serializes every worker's inserts.
 */
export const INSERT_STATEMENT = `WITH ${insertLeavesCte()},
inserted AS (${INSERT_BATCH}
RETURNING 1)
SELECT count(*)::int AS inserted FROM inserted`;

/**
 * The insert as a statement of its own (autocommit) under the write lease: the
 * same rows, written only if the hash log ends where the lease expects ($9 is
 * its next position; otherwise nothing is written and 0 is answered), and the
 * seq sequence moved to the batch's last position ($12, $13) so that it stays
 * ahead of every stored seq.
 */
export const LEASED_INSERT_STATEMENT = `WITH expected AS (
  SELECT COALESCE(max(leaf_index) + 1, 0) = $9::bigint AS position_holds FROM audit_log_leaves
),
${insertLeavesCte('\n  WHERE (SELECT position_holds FROM expected)')},
inserted AS (${INSERT_BATCH}
WHERE (SELECT position_holds FROM expected)
RETURNING 1)
SELECT counted.n AS inserted, CASE WHEN counted.n > 0 THEN setval($12::regclass, $13::bigint) END AS last_seq
FROM (SELECT count(*)::int AS n FROM inserted) counted`;

// The checked path's opening, in a transaction on the lease's connection: the stored ids among the
// batch's, where the hash log and positions end, and the batch's seqs as one range taken from the
// sequence at once (nothing else takes values while the lease is held); duplicates leave gaps,
// which seq allows.
export const PREPARE_CHECKED = `
SELECT
  (SELECT COALESCE(array_agg(event_id::text), '{}') FROM audit_log_leaves WHERE event_id = ANY($1::uuid[])) AS existing,
  (SELECT COALESCE(max(leaf_index) + 1, 0)::text FROM audit_log_leaves) AS next_leaf,
  (SELECT setval(s, nextval(s) + $2::int - 1)::text
     FROM (SELECT pg_get_serial_sequence('audit_events', 'seq')::regclass AS s) sequence) AS last_seq,
  now()::timestamptz(3) AS now`;

export interface PrepareState {
  existing: string[];
  next_leaf: string;
  last_seq: string;
  now: Date;
}

/** PostgreSQL's unique_violation. */
export const UNIQUE_VIOLATION = '23505';
