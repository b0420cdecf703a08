import type { KeyObject } from 'node:crypto';
import { verifyCheckpoint, type Checkpoint } from './checkpoint.js';
import { leafHashOf, type EventLike } from './leaf.js';
import { rootFromInclusionPath } from './merkle.js';

/**
 * The standalone verifier: what a client needs to check that one event is in
 * the signed history, with no database and no trust in the service beyond its
 * public key. Imports only node:crypto and the hashing modules beside it.
 */

/** What `eventProof(id)` and `GET /events/{id}/proof` answer, besides the event itself. */
export interface EventProof {
  /** The event's leaf: its position in the log and SHA-256(0x00 || canonical event). */
  leafIndex: string;
  leafHash: string;
  /** Hex sibling hashes, bottom-up (RFC 9162 audit path) within the checkpoint's range. */
  auditPath: string[];
  checkpoint: Checkpoint;
}

export type ProofVerdict =
  | { ok: true }
  | {
      ok: false;
      reason: 'bad-signature' | 'event-mismatch' | 'not-in-checkpoint' | 'bad-path' | 'malformed';
      message: string;
    };

/** An event as GraphQL returns it (camelCase) or as REST does (snake_case). */
export type ApiEvent = EventLike | Record<string, unknown>;

function fromApi(event: ApiEvent): EventLike {
  const record = event as Record<string, unknown>;
  const pick = (camel: string, snake: string): unknown => (camel in record ? record[camel] : record[snake]);
  return {
    id: String(pick('id', 'event_id') ?? ''),
    seq: String(pick('seq', 'seq') ?? ''),
    eventType: String(pick('eventType', 'event_type') ?? ''),
    sessionId: String(pick('sessionId', 'session_id') ?? ''),
    payload: pick('payload', 'payload') ?? {},
    clientTime: (pick('clientTime', 'client_time') ?? null) as string | null,
    receivedAt: pick('receivedAt', 'received_at') as string,
    persistedAt: pick('persistedAt', 'persisted_at') as string,
    apiKeyId: (pick('apiKeyId', 'api_key_id') ?? null) as string | null,
  };
}

/**
 * Checks that `event` (as the API returned it) is the leaf at `proof.leafIndex`
 * under the checkpoint, and that `publicKey` signed the checkpoint.
 * @param publicKey PEM, base64 SPKI, or the raw 32-byte key in base64 or hex.
 * @returns `{ ok: true }`, or the first reason the proof fails. Never throws.
 */
export function verifyEventProof(
  event: ApiEvent,
  proof: EventProof,
  publicKey: string | KeyObject,
): ProofVerdict {
  try {
    const { checkpoint } = proof;
    if (!verifyCheckpoint(checkpoint, publicKey)) {
      return { ok: false, reason: 'bad-signature', message: 'the checkpoint is not signed by this key' };
    }
    const leafHash = leafHashOf(fromApi(event));
    if (leafHash.toString('hex') !== proof.leafHash.toLowerCase()) {
      return { ok: false, reason: 'event-mismatch', message: 'the event does not hash to the proof’s leaf' };
    }
    const index = BigInt(proof.leafIndex);
    const first = BigInt(checkpoint.firstLeaf);
    const size = BigInt(checkpoint.treeSize);
    if (index < first || index >= size) {
      return {
        ok: false,
        reason: 'not-in-checkpoint',
        message: `leaf ${index} is outside [${first}, ${size})`,
      };
    }
    const root = rootFromInclusionPath(
      leafHash,
      Number(index - first),
      Number(size - first),
      proof.auditPath.map((hash) => Buffer.from(hash, 'hex')),
    );
    if (root === null || root.toString('hex') !== checkpoint.rangeRoot.toLowerCase()) {
      return {
        ok: false,
        reason: 'bad-path',
        message: 'the audit path does not lead to the checkpoint’s root',
      };
    }
    return { ok: true };
  } catch (error) {
    return {
      ok: false,
      reason: 'malformed',
      message: error instanceof Error ? error.message : String(error),
    };
  }
}
