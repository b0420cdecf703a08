import type { EventContent, IdReuse } from '../store/event-conflicts.js';
import type { QueuedEvent } from '../events/queue-message.js';
import { claimOf, type IdClaim, type IdClaims } from './id-claims.js';

/** What a caller-chosen id means for its event: reused by another event, or that event stored already. */
export type OwnIdVerdict = 'conflict' | 'stored';

export interface OwnIdCheck {
  /** By lower-case id; ids absent are new (or retries of a queued event) and are queued. */
  verdicts: Map<string, OwnIdVerdict>;
  /** Gives back the claims this check took, for events that were then not queued. */
  release(): Promise<void>;
}

export interface OwnIdDeps {
  /** Stored events, for ids older than any claim. */
  storedEvents?: { compareWithStored(events: readonly EventContent[]): Promise<Map<string, IdReuse>> };
  /** Ids accepted lately, by every API process (src/ingest/id-claims.ts). */
  idClaims?: IdClaims;
}

/**
 * Checks events that name their own `event_id` against those accepted lately
 * (claims) and those stored: a reuse by another event is a conflict; a retry of
 * a stored event is answered without queuing it again. Events without their
 * own id cost nothing here.
 */
export function createOwnIdCheck({ storedEvents, idClaims }: OwnIdDeps) {
  return async (events: readonly QueuedEvent[]): Promise<OwnIdCheck> => {
    const verdicts = new Map<string, OwnIdVerdict>();
    if (events.length === 0) return { verdicts, release: async () => undefined };
    const claims = events.map(claimOf);
    const claimed = idClaims ? await idClaims.claim(claims) : claims.map(() => 'new' as const);
    const taken: IdClaim[] = [];
    const unclaimed: QueuedEvent[] = [];
    claims.forEach((claim, index) => {
      const verdict = claimed[index];
      if (verdict === 'different') verdicts.set(claim.id, 'conflict');
      else if (verdict === 'new') {
        taken.push(claim);
        unclaimed.push(events[index]!);
      }
      // 'same': an identical event was accepted lately; queued again, the store skips the repeat.
    });
    const release = async (claimsToRelease: readonly IdClaim[]) => {
      if (idClaims && claimsToRelease.length > 0)
        await idClaims.release(claimsToRelease).catch(() => undefined);
    };
    const stored = storedEvents ? await storedOrUnknown(storedEvents, unclaimed) : new Map<string, IdReuse>();
    for (const [id, reuse] of stored) verdicts.set(id, reuse === 'different' ? 'conflict' : 'stored');
    // A claim just taken for an id the database holds for another event is not this event's to keep.
    const refused = (claim: IdClaim) => stored.get(claim.id) === 'different';
    await release(taken.filter(refused));
    return {
      verdicts,
      release: () => release(taken.filter((claim) => !refused(claim))),
    };
  };
}

/**
 * How long the door waits for the database's answer before it accepts without
 * it: ingest must not depend on the database (a PostgreSQL outage only delays
 * storing). Without the answer, a reuse of an id older than its claim is caught
 * by the worker instead, which sets the event aside as a conflict.
 */
const STORED_CHECK_MS = 250;

async function storedOrUnknown(
  storedEvents: NonNullable<OwnIdDeps['storedEvents']>,
  events: readonly QueuedEvent[],
): Promise<Map<string, IdReuse>> {
  if (events.length === 0) return new Map();
  let timer: NodeJS.Timeout | undefined;
  const unknown = new Promise<Map<string, IdReuse>>((resolve) => {
    timer = setTimeout(() => resolve(new Map()), STORED_CHECK_MS);
  });
  try {
    return await Promise.race([
      storedEvents.compareWithStored(events).catch(() => new Map<string, IdReuse>()),
      unknown,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
