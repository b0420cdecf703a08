import { readFile } from 'node:fs/promises';
import type { Config } from '../config/index.js';
import { AppError } from '../errors.js';
import { parsePublicKey } from '../integrity/checkpoint.js';
import { loadSigningKey } from '../integrity/keys.js';
import { createIntegrityService } from '../integrity/service.js';
import { createEventStore } from '../store/event-store.js';
import { createIntegrityStore } from '../store/integrity-store.js';
import { migrate } from '../store/migrate.js';
import { createRollupFolder } from '../store/rollup-folder.js';
import { EX_CONFIG, EX_TEMPFAIL, EX_USAGE } from './commands.js';
import { openForCommand } from './database.js';

export interface VerifyOptions {
  from: string | undefined;
  to: string | undefined;
  publicKeyFile: string | undefined;
  json: boolean;
}

/**
 * `auditgraph verify`: the same report as GET /integrity/verify, read straight
 * from the database. Signatures are checked with `--public-key` when given
 * (trusting nothing the database holds), else with the configured key.
 * @returns 0 intact, 1 tampering found, 64 a bad bound, 75 a server holds the folder,
 *   78 a key that cannot be read.
 */
export async function verifyCommand(options: VerifyOptions, config: Config): Promise<number> {
  let publicKey;
  try {
    const file = options.publicKeyFile;
    publicKey = file
      ? parsePublicKey(await readFile(file, 'utf8'))
      : ((
          await loadSigningKey({
            signingKey: config.integrity.signingKey,
            signingKeyFile: config.integrity.signingKeyFile,
            dataDir: config.database.kind === 'pglite' ? config.dataDir : undefined,
            generate: false,
          })
        )?.publicKey ?? null);
  } catch (error) {
    const variable = options.publicKeyFile
      ? '--public-key'
      : 'INTEGRITY_SIGNING_KEY (or INTEGRITY_SIGNING_KEY_FILE)';
    console.error(
      `Cannot read the public key, from ${variable}: ${error instanceof Error ? error.message : String(error)}`,
    );
    return EX_CONFIG;
  }
  const db = await openForCommand(config, 'verify');
  if (!db) return EX_TEMPFAIL;
  try {
    await migrate(db);
    const rollups = createRollupFolder(db);
    const service = createIntegrityService({
      store: createIntegrityStore(db, { rollups }),
      events: createEventStore(db, { rollups }),
      key: null,
      verifyKey: publicKey,
      checkpointIntervalMs: config.integrity.checkpointIntervalMs,
    });
    const report = await service.verify(options.from, options.to);
    if (options.json) console.log(JSON.stringify(report, null, 2));
    else if (report.ok) {
      console.log(
        `OK: ${report.eventsChecked} events, ${report.leavesChecked} hashes and ${report.checkpointsChecked} checkpoints verified` +
          `${report.signaturesChecked ? '' : ' (signatures NOT checked: no key)'}; ${report.uncheckpointedLeaves} events not yet under a checkpoint` +
          `${report.retainedThroughSeq === null ? '' : `; bodies up to seq ${report.retainedThroughSeq} removed by retention`}.`,
      );
    } else {
      const problem = report.problem!;
      console.log(
        `FAILED: ${problem.kind} at seq ${problem.seq ?? '?'} (event ${problem.id ?? '?'}${problem.foundId ? `, found ${problem.foundId}` : ''}): ${problem.message}`,
      );
    }
    return report.ok ? 0 : 1;
  } catch (error) {
    if (error instanceof AppError) {
      console.error(error.message);
      return EX_USAGE;
    }
    throw error;
  } finally {
    await db.close();
  }
}
