import type { AppError } from '../errors.js';
import { toAppError } from '../to-app-error.js';
import type { Logger } from '../observability/logger.js';
import { prefixOf, requireScopeOf, type Authenticator, type Principal } from '../security/authenticate.js';

/** One open connection whose key is watched: what it authenticated with, and how to act on a re-check. */
export interface WatchedConnection {
  /** The secret the connection presented; held in memory only, never logged. */
  readonly presented: string;
  /** A re-check admitted the key again: its scopes and rate limit may have changed. */
  refreshed(principal: Principal): void;
  /** The key no longer admits the connection (UNAUTHENTICATED: revoked or unknown; FORBIDDEN: lost `read`). */
  refused(error: AppError): void;
}

/** Lowest interval between re-checks, so a cache TTL of 0 does not turn the timer into a busy loop. */
const MIN_RECHECK_MS = 100;
/** Keys asked about at once, so a re-check of many keys does not take the whole database pool. */
const RECHECK_CONCURRENCY = 4;

/**
 * The one check that admits a live-feed connection or operation: the same
 * `authenticate()` as HTTP, then the `read` scope.
 * @throws AppError UNAUTHENTICATED (missing, unknown, revoked key) or FORBIDDEN (no `read` scope).
 */
export async function authorizeLive(
  authenticator: Authenticator,
  presented: string | undefined,
  options: { fresh?: boolean; onForbidden?: (() => void) | undefined } = {},
): Promise<Principal> {
  const principal = await authenticator.authenticate(presented, { fresh: options.fresh === true });
  requireScopeOf(principal, 'read', options.onForbidden);
  return principal;
}

/**
 * Keeps long-lived WebSocket connections as authorized as HTTP requests: one
 * timer per process re-authenticates each distinct key of the open
 * connections every half cache TTL, asking the store afresh (which also
 * refreshes the cache for HTTP), so a key revoked or stripped of `read` by
 * any process ends its connections within the TTL. A revocation made by this
 * process (`authenticator.forget`) ends them at once. A store that cannot be
 * reached is not a revocation: the connections stay and the next tick asks again.
 */
export function createLiveKeyWatch(options: {
  authenticator: Authenticator;
  logger: Logger;
  onForbidden?: (() => void) | undefined;
  /** Defaults to half the authenticator's cache TTL, at least 100 ms. */
  intervalMs?: number | undefined;
}) {
  const { authenticator, logger } = options;
  const byKey = new Map<string, Set<WatchedConnection>>();
  const intervalMs = options.intervalMs ?? Math.max(MIN_RECHECK_MS, authenticator.cacheTtlMs / 2);
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  async function recheck(presented: string): Promise<void> {
    const connections = byKey.get(presented);
    if (!connections) return;
    let principal: Principal;
    try {
      principal = await authorizeLive(authenticator, presented, {
        fresh: true,
        onForbidden: options.onForbidden,
      });
    } catch (caught) {
      const error = toAppError(caught);
      if (error.code !== 'UNAUTHENTICATED' && error.code !== 'FORBIDDEN') {
        logger.warn({ err: caught }, 're-checking the key of open live-feed connections failed; will retry');
        return;
      }
      byKey.delete(presented);
      for (const connection of connections) connection.refused(error);
      return;
    }
    for (const connection of byKey.get(presented) ?? []) connection.refreshed(principal);
  }

  async function recheckAll(keys: readonly string[]): Promise<void> {
    let next = 0;
    const lane = async () => {
      while (next < keys.length) await recheck(keys[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(RECHECK_CONCURRENCY, keys.length) }, lane));
  }

  function tick(): void {
    if (running) return; // a slow store: the next tick starts once this one ended
    running = recheckAll([...byKey.keys()]).finally(() => (running = undefined));
  }

  const stopListening = authenticator.onForget((prefix) => {
    const revoked = [...byKey.keys()].filter((presented) => prefixOf(presented) === prefix);
    void recheckAll(revoked);
  });

  return {
    /** Watches a connection from its acknowledgement; returns the function that stops watching it. */
    watch(connection: WatchedConnection): () => void {
      let connections = byKey.get(connection.presented);
      if (!connections) byKey.set(connection.presented, (connections = new Set()));
      connections.add(connection);
      if (!timer) {
        timer = setInterval(tick, intervalMs);
        timer.unref();
      }
      return () => {
        const current = byKey.get(connection.presented);
        current?.delete(connection);
        if (current?.size === 0) byKey.delete(connection.presented);
        if (byKey.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
        }
      };
    },

    /** Stops the timer and the revocation listener; waits for a re-check under way. */
    async stop(): Promise<void> {
      stopListening();
      if (timer) clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}

export type LiveKeyWatch = ReturnType<typeof createLiveKeyWatch>;
