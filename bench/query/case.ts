/**
 * What a query-bench case is (one question asked of the API, of the service's
 * modules in-process and of bare SQL), what it measured, and the pieces the
 * cases are built from.
 */
import { MAX_OFFSET } from '../../src/query/event-queries.js';
import type { Stats } from './figures.js';

export interface ApiCall {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
}

export interface SqlCall {
  /** One or more statements run back to back; the sample is their total time. */
  statements: Array<{ text: string; params: unknown[] }>;
}

export interface Case {
  id: string;
  label: string;
  /** p95 target of the API in ms, if the issue sets one. */
  targetMs?: number;
  api: (sample: number) => ApiCall;
  /** Throws when the answer is not what the case expects. */
  check: (json: unknown, sample: number) => void;
  /** The same question through the service's modules in this process, without HTTP. */
  inProcess?: (sample: number) => Promise<unknown>;
  sql: {
    label: string;
    /** Shown in the commands list. */
    text: string;
    call: (sample: number) => SqlCall;
    /** Slow live aggregations run --slow-samples times, after the API samples. */
    slow?: boolean;
  };
}

export interface CaseResult {
  id: string;
  label: string;
  targetMs: number | null;
  api: Stats;
  inProcess: Stats | null;
  sql: Stats & { label: string; query: string };
  ratio: number;
  met: boolean | null;
  /** Whether the ingest benchmark ran, or other processes used more than --max-other-cpu, during it. */
  contended: boolean;
  /** Cores the rest of the machine used on average while the API and fast SQL samples ran. */
  otherCores: number;
  attempts: number;
}

export const EVENT_COLUMNS =
  'id, seq, event_type, session_id, payload, client_time, received_at, persisted_at, api_key_id';
export const PAGE = 50;
export const DEEP_PAGE = 1000;
export const DEEP_OFFSET = (DEEP_PAGE - 1) * PAGE;
/** The deepest page `page` allows: offset MAX_OFFSET (src/query/event-queries.ts). */
export const DEEPEST_PAGE = MAX_OFFSET / PAGE + 1;

export const json = <T>(text: string): T => JSON.parse(text) as T;
export function expect(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`check failed: ${message}`);
}

export interface RestPage {
  events: Array<{ seq: string; event_type: string; session_id: string }>;
  count: number;
  next_cursor: string | null;
}
export interface GraphQLPage {
  data?: {
    events: {
      edges: Array<{ cursor: string; node: { seq: string } }>;
      pageInfo: { endCursor: string | null };
    };
  };
  errors?: unknown[];
}

/** A bare-SQL side of one statement: `text` with `params(sample)`; `shown` in the commands list when it differs. */
export function oneStatement(
  label: string,
  text: string,
  params: (sample: number) => unknown[] = () => [],
  shown = text,
): Case['sql'] {
  return { label, text: shown, call: (sample) => ({ statements: [{ text, params: params(sample) }] }) };
}
