import { z } from 'zod';
import type { IntegrityService } from '../integrity/service.js';
import { toRestEvent } from './routes.js';
import { parseQuery } from './query-params.js';
import type { Route, RouteResult } from './server.js';
import { errorResponse, objectResponse, secured } from './openapi-parts.js';
import { seqText } from '../validation.js';

const seqParam = seqText.optional();
const verifyQuerySchema = z.strictObject({ from: seqParam, to: seqParam });
const proofQuerySchema = z.strictObject({ id: z.uuid({ error: 'must be a UUID' }) });

/**
 * Tamper evidence over REST, answering what GraphQL answers (camelCase, as the
 * verifier reads it; the proof's event in the REST event shape):
 * - `GET /integrity/verify?from=&to=` (admin): the verification report; 200 either way, `ok` says;
 * - `GET /events/{id}/proof` (read), also as `GET /integrity/proof?id=`: one event's inclusion proof;
 * - `GET /integrity/public-key` (read): the checkpoint signing key;
 * - `GET /integrity/checkpoint` (read): the newest signed checkpoint.
 * @throws AppError BAD_REQUEST naming the parameter, NOT_FOUND for an unknown event or missing key.
 */
export function createIntegrityRoutes(service: IntegrityService): Route[] {
  async function proofOf(id: string): Promise<RouteResult> {
    const { event, proof, ...rest } = await service.proof(id);
    return { status: 200, body: { ...rest, event: event ? toRestEvent(event) : null, ...proof } };
  }

  return [
    {
      method: 'GET',
      path: '/integrity/verify',
      scope: 'admin',
      async handle({ url }) {
        const { from, to } = parseQuery(verifyQuerySchema, url.searchParams);
        return { status: 200, body: await service.verify(from, to) };
      },
    },
    {
      method: 'GET',
      path: '/events/{id}/proof',
      scope: 'read',
      handle: ({ params }) => proofOf(parseQuery(proofQuerySchema, new URLSearchParams(params)).id),
    },
    {
      method: 'GET',
      path: '/integrity/proof',
      scope: 'read',
      handle: ({ url }) => proofOf(parseQuery(proofQuerySchema, url.searchParams).id),
    },
    {
      method: 'GET',
      path: '/integrity/public-key',
      scope: 'read',
      handle: () => ({ status: 200, body: service.publicKey() }),
    },
    {
      method: 'GET',
      path: '/integrity/checkpoint',
      scope: 'read',
      async handle() {
        return { status: 200, body: { checkpoint: await service.latestCheckpoint() } };
      },
    },
  ];
}

const seqQuery = (name: 'from' | 'to', description: string) => ({
  name,
  in: 'query',
  description,
  schema: { type: 'string', pattern: '^\\d{1,19}$', description: 'At most 9223372036854775807.' },
});

/** The proof operation, served at two paths: the id in the path, or as `?id=`. */
function proofOperation(idIn: 'path' | 'query', summaryPrefix: string) {
  return {
    summary: `${summaryPrefix}Inclusion proof of one event: its leaf, the RFC 9162 audit path and the signed checkpoint, checkable offline with verifyEventProof and the public key`,
    ...secured,
    parameters: [{ name: 'id', in: idIn, required: true, schema: { type: 'string', format: 'uuid' } }],
    responses: {
      '200': objectResponse('The event (null once retention removed its body) and its proof'),
      '400': errorResponse('`id` is not a UUID.'),
      '401': errorResponse('Missing or unknown API key.'),
      '403': errorResponse("The key lacks the 'read' scope."),
      '404': errorResponse('No event with this id was ever stored.'),
      '503': errorResponse('The event is not under a signed checkpoint yet; retry after Retry-After.'),
    },
  };
}

/** The OpenAPI paths of {@link createIntegrityRoutes}, merged into the document by src/http/openapi.ts. */
export const integrityOpenApiPaths = {
  '/integrity/verify': {
    get: {
      summary:
        'Recompute the tamper-evident log and check the signed checkpoints: `ok`, or the first broken position (event id, seq, and whether it was modified, deleted, inserted or reordered)',
      ...secured,
      parameters: [
        seqQuery('from', 'Lowest seq to check (default: the start).'),
        seqQuery('to', 'Highest seq to check (default: the end).'),
      ],
      responses: {
        '200': objectResponse('The verification report; `ok` false with `problem` when tampering was found'),
        '400': errorResponse('A bound is not a seq, or from > to; `fields` names it.'),
        '401': errorResponse('Missing or unknown API key.'),
        '403': errorResponse("The key lacks the 'admin' scope."),
      },
    },
  },
  '/events/{id}/proof': { get: proofOperation('path', '') },
  '/integrity/proof': {
    get: proofOperation('query', 'The same as /events/{id}/proof, with the id as a query parameter. '),
  },
  '/integrity/public-key': {
    get: {
      summary: 'The Ed25519 key that signs checkpoints (PEM and raw base64) and its key id',
      ...secured,
      responses: {
        '200': objectResponse('The public key'),
        '401': errorResponse('Missing or unknown API key.'),
        '404': errorResponse('This deployment has no signing key.'),
      },
    },
  },
  '/integrity/checkpoint': {
    get: {
      summary: 'The newest signed checkpoint (null before the first)',
      ...secured,
      responses: {
        '200': objectResponse('`{ checkpoint }`'),
        '401': errorResponse('Missing or unknown API key.'),
      },
    },
  },
};
