/** Bare SQL the service could issue instead of its own, measured after the cases. */
import type pg from 'pg';
import { DEEP_OFFSET, DEEP_PAGE, EVENT_COLUMNS } from './case.js';

/**
 * Extra bare-SQL rows: what the service could issue instead, on the same data. "Late row
 * lookup" finds the page's positions by an index-only scan of the index that matches the
 * filter, (seq), (event_type, seq) or (session_id, seq), then fetches just those rows.
 */
export function alternativeQueries(
  deepSeq: string,
): Array<{ id: string; label: string; statements: Array<{ text: string; params: unknown[] }> }> {
  const late = (where: string, offsetParam: string) =>
    `SELECT ${EVENT_COLUMNS.split(', ')
      .map((column) => `e.${column}`)
      .join(', ')}
       FROM (SELECT seq FROM audit_events ${where} ORDER BY seq DESC OFFSET ${offsetParam} LIMIT 51) page
       JOIN audit_events e ON e.seq = page.seq
      ORDER BY e.seq DESC`;
  return [
    {
      id: 'sql-offset-51',
      label: `page ${DEEP_PAGE}: OFFSET ${DEEP_OFFSET} LIMIT 51 (the service's query, bare)`,
      statements: [
        {
          text: `SELECT ${EVENT_COLUMNS} FROM audit_events ORDER BY seq DESC OFFSET $1 LIMIT 51`,
          params: [DEEP_OFFSET],
        },
      ],
    },
    {
      id: 'sql-late-row-offset',
      label: `page ${DEEP_PAGE}: late row lookup (index-only OFFSET on (seq), join 51 rows)`,
      statements: [{ text: late('', '$1'), params: [DEEP_OFFSET] }],
    },
    {
      id: 'sql-boundary-offset',
      label: `page ${DEEP_PAGE}: boundary seq by index-only OFFSET, then seq <= boundary LIMIT 51`,
      statements: [
        {
          text: `SELECT ${EVENT_COLUMNS} FROM audit_events
                  WHERE seq <= (SELECT seq FROM audit_events ORDER BY seq DESC OFFSET $1 LIMIT 1)
                  ORDER BY seq DESC LIMIT 51`,
          params: [DEEP_OFFSET],
        },
      ],
    },
    {
      id: 'sql-two-step-offset',
      label: `page ${DEEP_PAGE}: two statements (as Prisma could: select seq only, then seq IN (…))`,
      statements: [
        { text: 'SELECT seq FROM audit_events ORDER BY seq DESC OFFSET $1 LIMIT 51', params: [DEEP_OFFSET] },
        {
          text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE seq = ANY($1::bigint[]) ORDER BY seq DESC`,
          params: ['{}'], // replaced by the first statement's seqs
        },
      ],
    },
    {
      id: 'sql-offset-by-type-51',
      label: `page ${DEEP_PAGE} by type: OFFSET ${DEEP_OFFSET} LIMIT 51 (the service's query, bare)`,
      statements: [
        {
          text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE event_type = $1 ORDER BY seq DESC OFFSET $2 LIMIT 51`,
          params: ['llm_query_sent', DEEP_OFFSET],
        },
      ],
    },
    {
      id: 'sql-late-row-by-type',
      label: `page ${DEEP_PAGE} by type: late row lookup through (event_type, seq)`,
      statements: [{ text: late('WHERE event_type = $1', '$2'), params: ['llm_query_sent', DEEP_OFFSET] }],
    },
    {
      id: 'sql-late-row-by-type-page-1',
      label: 'newest 50 by type: late row lookup through (event_type, seq)',
      statements: [{ text: late('WHERE event_type = $1', '0'), params: ['llm_query_sent'] }],
    },
    {
      id: 'sql-keyset-51',
      label: `page ${DEEP_PAGE}: keyset LIMIT 51 (the service's cursor query, bare)`,
      statements: [
        {
          text: `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 51`,
          params: [deepSeq],
        },
      ],
    },
  ];
}

/** Runs statements back to back; a '{}' parameter of a later statement takes the seqs the previous one returned. */
export async function runStatements(
  sql: pg.Client,
  statements: Array<{ text: string; params: unknown[] }>,
): Promise<void> {
  let previous: string[] = [];
  for (const statement of statements) {
    const params = statement.params.map((param) => (param === '{}' ? previous : param));
    const result = await sql.query<{ seq: string }>(statement.text, params);
    previous = result.rows.map((row) => String(row.seq));
  }
}
