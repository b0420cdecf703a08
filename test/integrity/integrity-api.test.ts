import { stat } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { v7 as uuidv7 } from 'uuid';
import { EMBEDDED_KEY_FILE, generateSigningKeyPem } from '../../src/integrity/keys.js';
import { verifyEventProof, type EventProof } from '../../src/integrity/verifier.js';
import { eventually, startTestApp, type TestApp } from '../support/app.js';
import { spawnAuditgraph } from '../support/processes.js';
import { postgresAvailable, redisAvailable } from '../support/services.js';

async function call(app: TestApp, target: string, key = app.keys.admin) {
  const response = await fetch(`${app.baseUrl}${target}`, { headers: { 'x-api-key': key } });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function graphql(
  app: TestApp,
  query: string,
  variables: Record<string, unknown> = {},
  key = app.keys.admin,
) {
  const response = await fetch(`${app.baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': key },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as {
    data?: Record<string, unknown>;
    errors?: Array<{ extensions: { code: string } }>;
  };
}

async function logEvents(app: TestApp, count: number): Promise<string[]> {
  const response = await fetch(`${app.baseUrl}/log`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': app.keys.admin },
    body: JSON.stringify(
      Array.from({ length: count }, (_, index) => ({
        session_id: index,
        event_type: 'llm_feedback_received',
        payload: { model: 'gpt-4o', cost_usd: 0.25 * index, success: index % 2 === 0, note: 'ünïcode ✓' },
        timestamp: '2026-11-26T15:00:00.123000+01:00',
      })),
    ),
  });
  expect(response.status).toBe(202);
  return ((await response.json()) as { event_ids: string[] }).event_ids;
}

/** The proof of `id` once the worker stored it and a checkpoint covers it. */
const provenProof = (app: TestApp, id: string) =>
  eventually(
    async () => {
      const { status, body } = await call(app, `/events/${id}/proof`);
      if (status !== 200) return undefined;
      // The query-parameter form answers the same.
      expect((await call(app, `/integrity/proof?id=${id}`)).body).toEqual(body);
      return body;
    },
    15_000,
    `a checkpoint covering ${id}`,
  );

describe('tamper evidence over REST, GraphQL and the CLI (embedded)', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp('embedded', { env: { INTEGRITY_CHECKPOINT_INTERVAL_MS: '50' } });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('generates the signing key into the data folder, readable by its owner only, and publishes its public half', async () => {
    const file = path.join(app.env['AUDITGRAPH_DATA_DIR']!, EMBEDDED_KEY_FILE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const { status, body } = await call(app, '/integrity/public-key', app.keys.readOnly);
    expect(status).toBe(200);
    expect(body).toMatchObject({ algorithm: 'Ed25519', keyId: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(String(body['publicKeyPem'])).toContain('BEGIN PUBLIC KEY');
    expect(JSON.stringify(body)).not.toContain('PRIVATE');
  });

  it('serves a proof that the standalone verifier accepts with the published key, over REST and GraphQL', async () => {
    const ids = await logEvents(app, 5);
    const rest = await provenProof(app, ids[3]!);
    const publicKey = (await call(app, '/integrity/public-key')).body['publicKey'] as string;
    const restEvent = rest['event'] as Record<string, unknown>;
    expect(restEvent['event_id'] ?? restEvent['id']).toBe(ids[3]);
    expect(verifyEventProof(restEvent, rest as unknown as EventProof, publicKey)).toEqual({ ok: true });
    expect(verifyEventProof({ ...restEvent, payload: {} }, rest as unknown as EventProof, publicKey).ok).toBe(
      false,
    );

    const result = await graphql(
      app,
      `
        query ($id: ID!) {
          eventProof(id: $id) {
            id
            seq
            leafIndex
            leafHash
            auditPath
            event {
              id
              seq
              eventType
              sessionId
              payload
              clientTime
              receivedAt
              persistedAt
              apiKeyId
            }
            checkpoint {
              index
              firstLeaf
              treeSize
              lastSeq
              rangeRoot
              previousRoot
              rootHash
              createdAt
              keyId
              signature
            }
          }
          integrityPublicKey {
            publicKeyPem
          }
        }
      `,
      { id: ids[3] },
    );
    const proof = result.data!['eventProof'] as EventProof & { event: Record<string, unknown> };
    const pem = (result.data!['integrityPublicKey'] as { publicKeyPem: string }).publicKeyPem;
    expect(proof.event['clientTime']).toBe('2026-11-26T14:00:00.123Z');
    expect(verifyEventProof(proof.event, proof, pem)).toEqual({ ok: true });
  });

  it('reports the history intact over REST and GraphQL, to admin keys only', async () => {
    const ids = await logEvents(app, 3);
    await provenProof(app, ids[2]!);
    const rest = await call(app, '/integrity/verify');
    expect(rest).toMatchObject({ status: 200, body: { ok: true, signaturesChecked: true, problem: null } });
    expect(rest.body['eventsChecked']).toBeGreaterThanOrEqual(8);
    const result = await graphql(app, '{ verifyIntegrity(from: "1") { ok eventsChecked problem { kind } } }');
    expect(result.data!['verifyIntegrity']).toMatchObject({ ok: true, problem: null });

    expect((await call(app, '/integrity/verify', app.keys.readOnly)).status).toBe(403);
    const forbidden = await graphql(app, '{ verifyIntegrity { ok } }', {}, app.keys.readOnly);
    expect(forbidden.errors?.[0]?.extensions.code).toBe('FORBIDDEN');
  });

  it('names the bad parameter with a 400, and answers 404 for an event never stored', async () => {
    expect(await call(app, '/integrity/verify?from=abc')).toMatchObject({
      status: 400,
      body: { error: { fields: [{ field: 'from' }] } },
    });
    expect((await call(app, '/integrity/verify?from=9&to=3')).status).toBe(400);
    expect((await call(app, '/integrity/proof?id=nope')).status).toBe(400);
    expect(await call(app, '/events/nope/proof')).toMatchObject({
      status: 400,
      body: { error: { fields: [{ field: 'id' }] } },
    });
    expect((await call(app, '/events/%E0%A4%A/proof')).status).toBe(400);
    expect((await call(app, `/events/${uuidv7()}/proof`)).status).toBe(404);
    expect((await call(app, `/integrity/proof?id=${uuidv7()}`)).status).toBe(404);
    const result = await graphql(app, '{ verifyIntegrity(from: "x") { ok } }');
    expect(result.errors?.[0]?.extensions.code).toBe('BAD_USER_INPUT');
  });
});

describe.skipIf(!postgresAvailable || !redisAvailable)(
  'tamper evidence on PostgreSQL: verification names the tampered event',
  () => {
    let app: TestApp;
    let admin: pg.Client;
    beforeAll(async () => {
      app = await startTestApp('postgres+redis', {
        env: { INTEGRITY_CHECKPOINT_INTERVAL_MS: '50', INTEGRITY_SIGNING_KEY: generateSigningKeyPem() },
      });
      admin = new pg.Client({ connectionString: app.env['DATABASE_URL'] });
      await admin.connect();
    });
    afterAll(async () => {
      await admin?.end();
      await app?.stop();
    });

    it('exits 0 from `auditgraph verify` while intact, and 1 naming a modified event after tampering', async () => {
      const ids = await logEvents(app, 6);
      await provenProof(app, ids[5]!);
      const env = {
        DATABASE_URL: app.env['DATABASE_URL']!,
        INTEGRITY_SIGNING_KEY: app.env['INTEGRITY_SIGNING_KEY']!,
      };
      const intact = spawnAuditgraph(['verify'], env);
      expect(await intact.exited, intact.output()).toBe(0);
      expect(intact.stdout()).toMatch(/^OK: 6 events/);

      const { rows } = await admin.query<{ seq: string }>(
        'SELECT seq::text FROM audit_events WHERE id = $1',
        [ids[2]],
      );
      await admin.query('BEGIN');
      await admin.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
      await admin.query(`UPDATE audit_events SET payload = payload || '{"cost_usd": 0}' WHERE id = $1`, [
        ids[2],
      ]);
      await admin.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
      await admin.query('COMMIT');

      const failed = spawnAuditgraph(['verify', '--json'], env);
      expect(await failed.exited, failed.output()).toBe(1);
      expect(JSON.parse(failed.stdout())).toMatchObject({
        ok: false,
        problem: { kind: 'modified', id: ids[2], seq: rows[0]!.seq },
      });
      expect(await call(app, '/integrity/verify')).toMatchObject({
        body: { ok: false, problem: { kind: 'modified', id: ids[2], seq: rows[0]!.seq } },
      });
    });
  },
);
