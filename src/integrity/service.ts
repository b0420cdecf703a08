import type { KeyObject } from 'node:crypto';
import { AppError, badRequest } from '../errors.js';
import type { StoredEvent } from '../events/stored-event.js';
import { checkSeqText } from '../validation.js';
import type { Checkpoint } from './checkpoint.js';
import { publishedKey, type PublishedKey, type SigningKey } from './keys.js';
import type { EventLookup, IntegrityLedger } from './ports.js';
import type { IntegrityReport } from './report.js';
import { verifyLog } from './verification.js';
import type { EventProof } from './verifier.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A bound as the front doors pass it: absent or empty means none. */
const parseSeq = (value: string | null | undefined, field: string): bigint | undefined =>
  value === undefined || value === null || value === '' ? undefined : BigInt(checkSeqText(value, field));

/** One event's proof, with the event as the API returns it (null once retention removed its body). */
export interface EventProofResult {
  id: string;
  seq: string;
  event: StoredEvent | null;
  proof: EventProof;
}

/**
 * Tamper evidence for the front doors (REST, GraphQL, CLI): they parse, call
 * this, and shape the answer, so all three report the same thing.
 */
export function createIntegrityService(deps: {
  store: IntegrityLedger;
  events: EventLookup;
  key: SigningKey | null;
  /** The key checkpoints are verified with; by default the signing key's public half. */
  verifyKey?: KeyObject | null;
  /** How often checkpoints are written: the Retry-After of a proof not yet checkpointed. */
  checkpointIntervalMs: number;
}) {
  return {
    /** @throws AppError NOT_FOUND when this deployment has no signing key. */
    publicKey(): PublishedKey {
      if (!deps.key) {
        throw new AppError('NOT_FOUND', 'No checkpoint signing key is configured (INTEGRITY_SIGNING_KEY).');
      }
      return publishedKey(deps.key);
    },

    /**
     * Verifies the whole log, or the events with from ≤ seq ≤ to.
     * @throws AppError BAD_REQUEST for a bound that is not a seq (0..2^63-1, see src/validation.ts), or from > to.
     */
    async verify(from?: string | null, to?: string | null): Promise<IntegrityReport> {
      const lower = parseSeq(from, 'from');
      const upper = parseSeq(to, 'to');
      if (lower !== undefined && upper !== undefined && lower > upper) {
        throw badRequest('from must not be greater than to', [{ field: 'from', message: 'must be ≤ to' }]);
      }
      return verifyLog(
        deps.store.log,
        { from: lower, to: upper },
        deps.verifyKey ?? deps.key?.publicKey ?? null,
      );
    },

    /**
     * @throws AppError BAD_REQUEST for an id that is not a UUID, NOT_FOUND for an
     *   event never stored, SERVICE_UNAVAILABLE (with Retry-After) for one not yet
     *   under a checkpoint.
     */
    async proof(id: string): Promise<EventProofResult> {
      if (!UUID.test(id)) throw badRequest('id must be a UUID', [{ field: 'id', message: 'must be a UUID' }]);
      const found = await deps.store.proofOf(id.toLowerCase());
      if (!found) throw new AppError('NOT_FOUND', `No event ${id} was ever stored.`);
      if (!found.proof) {
        throw new AppError(
          'SERVICE_UNAVAILABLE',
          deps.key
            ? `Event ${id} is not under a signed checkpoint yet; retry shortly.`
            : 'No checkpoint signing key is configured, so no event has a proof.',
          { retryAfterSeconds: Math.max(1, Math.ceil(deps.checkpointIntervalMs / 1000)) },
        );
      }
      return {
        id: id.toLowerCase(),
        seq: found.seq,
        event: await deps.events.findById(id),
        proof: found.proof,
      };
    },

    /** Writes checkpoints over every leaf not yet covered; none without a key or when another process is at it. */
    async checkpoint(): Promise<Checkpoint[]> {
      return deps.key ? deps.store.checkpoint(deps.key) : [];
    },

    latestCheckpoint: () => deps.store.latestCheckpoint(),
  };
}

export type IntegrityService = ReturnType<typeof createIntegrityService>;
