import type { Logger } from '../observability/logger.js';
import type { Retention } from './ports.js';
import type { IntegrityService } from './service.js';

const DAY_MS = 24 * 3600 * 1000;

/**
 * The worker's periodic integrity work: a checkpoint every `intervalMs` (when
 * new leaves exist), and with `retentionDays` a retention run every
 * `retentionEveryMs`. Each run takes an advisory lock, so with several workers
 * one of them does it and the others skip their turn. Failures are logged and
 * counted, and retried at the next tick: the audit rows are already safe, only
 * their signature waits.
 */
export function startIntegrityLoops(deps: {
  service: Pick<IntegrityService, 'checkpoint'>;
  store: Retention;
  intervalMs: number;
  retentionDays: number | undefined;
  retentionEveryMs?: number;
  logger: Logger;
  onFailure?: (operation: 'checkpoint' | 'retention') => void;
  now?: () => Date;
}): { stop(): Promise<void> } {
  const now = deps.now ?? (() => new Date());
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const timers = new Set<NodeJS.Timeout>();

  const checkpoint = async () => {
    try {
      const written = await deps.service.checkpoint();
      const last = written[written.length - 1];
      if (last)
        deps.logger.debug({ checkpoint: last.index, treeSize: last.treeSize }, 'integrity checkpoint signed');
    } catch (error) {
      deps.onFailure?.('checkpoint');
      deps.logger.error({ err: error }, 'integrity checkpoint failed');
    }
  };
  const retention = async () => {
    if (deps.retentionDays === undefined) return;
    try {
      const result = await deps.store.applyRetention(new Date(now().getTime() - deps.retentionDays * DAY_MS));
      if (result.deleted > 0) {
        deps.logger.info(
          { deleted: result.deleted, throughSeq: result.throughSeq },
          'retention removed old events',
        );
      }
    } catch (error) {
      deps.onFailure?.('retention');
      deps.logger.error({ err: error }, 'retention failed');
    }
  };

  const every = (ms: number, work: () => Promise<void>) => {
    const tick = () => {
      timers.delete(timer);
      if (stopped) return;
      running = running.then(work).finally(() => {
        if (!stopped) schedule();
      });
    };
    let timer: NodeJS.Timeout;
    const schedule = () => {
      timer = setTimeout(tick, ms);
      timer.unref();
      timers.add(timer);
    };
    schedule();
  };
  every(deps.intervalMs, checkpoint);
  if (deps.retentionDays !== undefined) every(deps.retentionEveryMs ?? 3600_000, retention);

  return {
    /** Waits for a run in progress, then signs what the worker stored last, so a clean stop leaves nothing unsigned. */
    async stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await running;
      await checkpoint();
    },
  };
}
