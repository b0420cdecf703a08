import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { unauthenticated } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import { digestSecret } from '../security/authenticate.js';
import { errorResponse, jsonResponse, open } from './openapi-parts.js';
import type { Route } from './server.js';

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

const healthSchema = z.object({
  status: z.literal('healthy'),
  service: z.literal('auditgraph'),
  version: z.string(),
});

const readinessSchema = z.object({
  status: z.enum(['ready', 'not_ready']),
  checks: z
    .record(z.string(), z.object({ ok: z.boolean(), error: z.enum(['unavailable', 'timeout']).optional() }))
    .describe('Each part checked (database, queue, …): `ok`, or why not, never its address.'),
});

/**
 * Routes for operators, open without a key: liveness, readiness, metrics.
 * `/health/ready` answers 503 naming each part that is down (`checks.<name>.error` is
 * `unavailable` or `timeout`), never its address or the driver's error.
 */
export function createOperationalRoutes(deps: {
  version: string;
  readiness: readonly ReadinessCheck[];
  metrics: Metrics;
  /** When set, /metrics answers only `Authorization: Bearer <token>`. */
  metricsToken?: string | undefined;
}): Route[] {
  return [
    {
      method: 'GET',
      path: '/health',
      scope: null,
      handle: () => {
        const body: z.infer<typeof healthSchema> = {
          status: 'healthy',
          service: 'auditgraph',
          version: deps.version,
        };
        return { status: 200, body };
      },
    },
    {
      method: 'GET',
      path: '/health/ready',
      scope: null,
      async handle() {
        const results = await Promise.all(
          deps.readiness.map(async ({ name, check }) => {
            try {
              await withTimeout(check(), READINESS_TIMEOUT_MS);
              return [name, { ok: true }] as const;
            } catch (error) {
              // Open without a key: which part is down, never the driver's words, which name hosts,
              // ports, URLs and users. The process's own logs and metrics carry the cause.
              const reason = error instanceof ReadinessTimeout ? 'timeout' : 'unavailable';
              return [name, { ok: false, error: reason }] as const;
            }
          }),
        );
        const ready = results.every(([, result]) => result.ok);
        const body: z.infer<typeof readinessSchema> = {
          status: ready ? 'ready' : 'not_ready',
          checks: Object.fromEntries(results),
        };
        return { status: ready ? 200 : 503, body };
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      scope: null,
      async handle({ request }) {
        if (
          deps.metricsToken !== undefined &&
          !bearerMatches(request.headers.authorization, deps.metricsToken)
        ) {
          throw unauthenticated('/metrics needs the METRICS_TOKEN as a Bearer token.');
        }
        return {
          status: 200,
          body: await deps.metrics.registry.metrics(),
          headers: { 'content-type': deps.metrics.registry.contentType },
          raw: true,
        };
      },
    },
  ];
}

/**
 * `GET /openapi.json`, open: `document` as built once by src/http/openapi.ts (taken as a value,
 * so this module does not import the document that imports its paths).
 */
export function createOpenApiRoute(document: object): Route {
  return {
    method: 'GET',
    path: '/openapi.json',
    scope: null,
    handle: () => ({ status: 200, body: document }),
  };
}

/** The OpenAPI paths of {@link createOperationalRoutes} and {@link createOpenApiRoute}. */
export const operationalOpenApiPaths = {
  '/health': {
    get: {
      operationId: 'health',
      summary: 'Liveness: the process answers',
      ...open,
      responses: { '200': jsonResponse('Alive', healthSchema) },
    },
  },
  '/health/ready': {
    get: {
      operationId: 'ready',
      summary: 'Readiness: database and queue reachable',
      ...open,
      responses: {
        '200': jsonResponse('Ready', readinessSchema),
        '503': jsonResponse('Not ready; `checks` says which part', readinessSchema),
      },
    },
  },
  '/metrics': {
    get: {
      operationId: 'metrics',
      summary: 'Prometheus metrics, in the text exposition format',
      description:
        'Open, unless the deployment sets METRICS_TOKEN: then only `Authorization: Bearer <METRICS_TOKEN>` is answered (not an API key).',
      ...open,
      responses: {
        '200': { description: 'The metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
        '401': errorResponse('METRICS_TOKEN is set and the request does not carry it as a Bearer token.'),
      },
    },
  },
  '/openapi.json': {
    get: {
      operationId: 'openApiDocument',
      summary: 'This document',
      ...open,
      responses: {
        '200': {
          description: 'The OpenAPI 3.1 description of the REST shim',
          content: { 'application/json': { schema: { type: 'object' } } },
        },
      },
    },
  },
};

/** Constant-time comparison of a Bearer token with the expected one. */
function bearerMatches(authorization: string | undefined, expected: string): boolean {
  const presented = /^Bearer\s+(.+)$/i.exec(authorization?.trim() ?? '')?.[1] ?? '';
  return timingSafeEqual(digestSecret(presented), digestSecret(expected));
}

const READINESS_TIMEOUT_MS = 2000;

class ReadinessTimeout extends Error {}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ReadinessTimeout(`timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
