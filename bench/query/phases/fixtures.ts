/**
 * What the cases ask for, found on the loaded data: sessions to pick from, the
 * first seq of page 1000, and the cursor to page 1000 (by following next_cursor
 * from page 1, each page timed on the way).
 */
import type pg from 'pg';
import { DEEP_OFFSET, DEEP_PAGE, expect, json, type RestPage } from '../case.js';
import type { Client } from '../client.js';
import { ms, stats } from '../figures.js';
import type { Options } from '../options.js';

export async function findFixtures(sql: pg.Client, options: Options) {
  const sessionList = (
    await sql.query<{ s: string }>(
      'SELECT session_id AS s FROM analytics_session_activity ORDER BY session_id',
    )
  ).rows.map((row) => row.s);
  expect(sessionList.length > 0, 'sessions loaded');
  const shuffled = (count: number) =>
    Array.from({ length: count }, () => sessionList[Math.floor(Math.random() * sessionList.length)]!);
  const total = options.warmup + options.samples;
  const sessionsApi = shuffled(total);
  const sessionsSql = shuffled(total);
  const deepFirstSeq = (
    await sql.query<{ seq: string }>(
      'SELECT e.seq::text AS seq FROM audit_events e ORDER BY e.seq DESC OFFSET $1 LIMIT 1',
      [DEEP_OFFSET],
    )
  ).rows[0]!.seq;
  const deepTypeFirstSeq = (
    await sql.query<{ seq: string }>(
      'SELECT e.seq::text AS seq FROM audit_events e WHERE e.event_type = $1 ORDER BY e.seq DESC OFFSET $2 LIMIT 1',
      ['llm_query_sent', DEEP_OFFSET],
    )
  ).rows[0]!.seq;
  return { sessionsApi, sessionsSql, deepFirstSeq, deepTypeFirstSeq };
}

/** Follows next_cursor from page 1 to page 1000, timing each page on the way. */
export async function walkToDeepPage(client: Client) {
  const walkTimes: number[] = [];
  let cursor: string | null = null;
  let deepCursor = '';
  for (let page = 1; page < DEEP_PAGE; page += 1) {
    const reply = await client.request(
      'GET',
      `/events?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    expect(reply.status === 200, `walk page ${page}: ${reply.status} ${reply.body.slice(0, 200)}`);
    if (page > 1) walkTimes.push(reply.ms);
    cursor = json<RestPage>(reply.body).next_cursor;
    expect(cursor, `page ${page} has a next_cursor`);
    deepCursor = cursor;
  }
  const deepSeq = /^seq:(\d+)$/.exec(Buffer.from(deepCursor, 'base64url').toString('utf8'))?.[1];
  expect(deepSeq, 'cursor decodes to a seq');
  const walk = stats(walkTimes);
  console.log(
    `followed next_cursor pages 1→${DEEP_PAGE}: each page p50 ${ms(walk.p50)} ms, p95 ${ms(walk.p95)} ms, max ${ms(walk.max)} ms`,
  );
  return { deepCursor, deepSeq, walk };
}
