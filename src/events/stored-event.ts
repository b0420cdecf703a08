/**
 * Events as the store takes them, gives them back and is asked for them: the
 * types the worker, the query service, the live feed and both front doors share.
 */

/** An event as the worker hands it to the store. */
export interface NewEvent {
  id: string;
  eventType: string;
  sessionId: string;
  payload: Record<string, unknown>;
  clientTime: string | null;
  receivedAt: string;
  apiKeyId: string | null;
}

export interface StoredEvent {
  id: string;
  /** Decimal string: a bigint that JSON and GraphQL carry safely. */
  seq: string;
  eventType: string;
  sessionId: string;
  payload: Record<string, unknown>;
  /**
   * The payload as JSON text, when the store had it at hand (events it just
   * wrote): the live feed's announcement reuses it instead of serializing again.
   */
  payloadJson?: string;
  clientTime: Date | null;
  receivedAt: Date;
  persistedAt: Date;
  apiKeyId: string | null;
}

export interface EventQuery {
  /** Any of these types. */
  eventTypes?: readonly string[] | undefined;
  sessionId?: string | undefined;
  /** Received at or after this time. */
  from?: Date | undefined;
  /** Received before this time. */
  to?: Date | undefined;
  /** Payload values that must all match exactly, each at its path of keys. */
  payloadMatches?: ReadonlyArray<{ path: readonly string[]; value: unknown }> | undefined;
  limit: number;
  /** Rows to skip, for the spec's `page`. Prefer `beforeSeq`, which costs the same at any depth. */
  offset?: number;
  /** Only events older than this position (a keyset cursor). */
  beforeSeq?: bigint | undefined;
  /** Only events newer than this position: the live feed catching up. */
  afterSeq?: bigint | undefined;
  /** Oldest first instead of newest first. */
  ascending?: boolean;
}
