import { z } from 'zod';
import type { Checkpoint } from '../integrity/checkpoint.js';
import type { PublishedKey } from '../integrity/keys.js';
import type { IntegrityReport } from '../integrity/report.js';
import type { IntegrityService } from '../integrity/service.js';
import { seqText } from '../validation.js';
import { errorResponse, jsonResponse, keyedErrors, parametersOf, secured } from './openapi-parts.js';
import { parseQuery } from './query-params.js';
import { restEventSchema, toRestEvent } from './rest-event.js';
import type { Route, RouteResult } from './server.js';

const verifyQuerySchema = z.strictObject({
  from: seqText.optional().describe('Lowest seq to check (default: the start).'),
  to: seqText.optional().describe('Highest seq to check (default: the end).'),
});
const proofQuerySchema = z.strictObject({ id: z.uuid({ error: 'must be a UUID' }) });

// The answers are camelCase, as GraphQL and the offline verifier read them.
const seq = z.string().describe('A seq: a decimal int8, as text.');

const reportSchema = z.object({
  ok: z.boolean(),
  from: seq.nullable(),
  to: seq.nullable(),
  eventsChecked: z.number().int(),
  leavesChecked: z.number().int(),
  checkpointsChecked: z.number().int(),
  signaturesChecked: z.boolean().describe('False when no public key was configured: hashes only.'),
  treeSize: z.string(),
  uncheckpointedLeaves: z.string(),
  retainedThroughSeq: seq.nullable().describe('Bodies of seq ≤ this were removed by retention on purpose.'),
  problem: z
    .object({
      kind: z.enum([
        'modified',
        'deleted',
        'inserted',
        'reordered',
        'leaf_missing',
        'leaves_modified',
        'checkpoint_invalid',
      ]),
      id: z.string().nullable(),
      seq: seq.nullable(),
      foundId: z.string().nullable(),
      message: z.string(),
    })
    .nullable()
    .describe('The first broken position, or null when `ok`.'),
});

const checkpointSchema = z.object({
  index: z.string(),
  firstLeaf: z.string(),
  treeSize: z.string(),
  lastSeq: seq,
  rangeRoot: z.string(),
  previousRoot: z.string(),
  rootHash: z.string(),
  createdAt: z.iso.datetime(),
  keyId: z.string(),
  signature: z.string().describe('Ed25519, base64.'),
});

const proofSchema = z.object({
  id: z.uuid(),
  seq,
  event: restEventSchema.nullable().describe('null once retention removed its body.'),
  leafIndex: z.string(),
  leafHash: z.string(),
  auditPath: z.array(z.string()).describe('Hex sibling hashes, bottom-up (RFC 9162).'),
  checkpoint: checkpointSchema,
});

const publicKeySchema = z.object({
  keyId: z.string(),
  algorithm: z.literal('Ed25519'),
  publicKeyPem: z.string().describe('SPKI PEM.'),
  publicKey: z.string().describe('The raw 32-byte key, base64.'),
});

const latestCheckpointSchema = z.object({ checkpoint: checkpointSchema.nullable() });

// The compiler checks the answer schemas against the service's types (see the handlers too).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemasMatchService: [
  Same<IntegrityReport, z.infer<typeof reportSchema>>,
  Same<Checkpoint, z.infer<typeof checkpointSchema>>,
  Same<PublishedKey, z.infer<typeof publicKeySchema>>,
] = [true, true, true];
void schemasMatchService;

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
    const body: z.infer<typeof proofSchema> = { ...rest, event: event ? toRestEvent(event) : null, ...proof };
    return { status: 200, body };
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
        const body: z.infer<typeof latestCheckpointSchema> = { checkpoint: await service.latestCheckpoint() };
        return { status: 200, body };
      },
    },
  ];
}

/** The proof operation, served at two paths: the id in the path, or as `?id=`. */
function proofOperation(idIn: 'path' | 'query', operationId: string, summaryPrefix: string) {
  return {
    operationId,
    summary: `${summaryPrefix}Inclusion proof of one event: its leaf, the RFC 9162 audit path and the signed checkpoint, checkable offline with verifyEventProof and the public key`,
    ...secured,
    parameters: parametersOf(proofQuerySchema, idIn),
    responses: {
      '200': jsonResponse('The event (null once retention removed its body) and its proof', proofSchema),
      '400': errorResponse('`id` is not a UUID.'),
      ...keyedErrors('read'),
      '404': errorResponse('No event with this id was ever stored.'),
      '503': errorResponse('The event is not under a signed checkpoint yet; retry after Retry-After.'),
    },
  };
}

/** The OpenAPI paths of {@link createIntegrityRoutes}, assembled by src/http/openapi.ts. */
export const integrityOpenApiPaths = {
  '/integrity/verify': {
    get: {
      operationId: 'verifyIntegrity',
      summary:
        'Recompute the tamper-evident log and check the signed checkpoints: `ok`, or the first broken position (event id, seq, and whether it was modified, deleted, inserted or reordered)',
      ...secured,
      parameters: parametersOf(verifyQuerySchema),
      responses: {
        '200': jsonResponse(
          'The verification report; `ok` false with `problem` when tampering was found',
          reportSchema,
        ),
        '400': errorResponse('A bound is not a seq, or from > to; `fields` names it.'),
        ...keyedErrors('admin'),
      },
    },
  },
  '/events/{id}/proof': { get: proofOperation('path', 'eventProof', '') },
  '/integrity/proof': {
    get: proofOperation(
      'query',
      'eventProofByQuery',
      'The same as /events/{id}/proof, with the id as a query parameter. ',
    ),
  },
  '/integrity/public-key': {
    get: {
      operationId: 'checkpointPublicKey',
      summary: 'The Ed25519 key that signs checkpoints (PEM and raw base64) and its key id',
      ...secured,
      responses: {
        '200': jsonResponse('The public key', publicKeySchema),
        ...keyedErrors('read'),
        '404': errorResponse('This deployment has no signing key.'),
      },
    },
  },
  '/integrity/checkpoint': {
    get: {
      operationId: 'latestCheckpoint',
      summary: 'The newest signed checkpoint (null before the first)',
      ...secured,
      responses: {
        '200': jsonResponse('`{ checkpoint }`', latestCheckpointSchema),
        ...keyedErrors('read'),
      },
    },
  },
};
