import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataFolderInUseError, LOCK_FILE } from '../../src/store/data-dir-lock.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { spawnAuditgraph } from '../support/processes.js';

/** `auditgraph <args>` on the embedded data folder `dir`, as an operator would run it beside a server. */
async function cli(dir: string, ...args: string[]) {
  const proc = spawnAuditgraph(args, { AUDITGRAPH_DATA_DIR: dir });
  const code = await proc.exited;
  return { code, stdout: proc.stdout(), output: proc.output() };
}

/** A pid that certainly ran and certainly ended, for a lock left by a crashed process. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

describe('CLI writes against an embedded data folder a running server holds', () => {
  let dir: string;
  let app: TestApp | undefined;
  const pgliteLock = () => path.join(dir, 'pglite', LOCK_FILE);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ag-held-'));
    app = await startTestApp('embedded', { env: { AUDITGRAPH_DATA_DIR: dir } });
  });
  afterAll(async () => {
    await app?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const keyNames = async (running: TestApp) => {
    const response = await fetch(`${running.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'x-api-key': running.keys.admin, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ apiKeys { id name } }' }),
    });
    const body = (await response.json()) as { data: { apiKeys: Array<{ id: string; name: string }> } };
    return body.data.apiKeys;
  };

  it('refuses `keys create` while the server runs, printing no key and leaving its key list unchanged', async () => {
    const before = await keyNames(app!);
    const created = await cli(dir, 'keys', 'create', '--name', 'lost-key', '--scopes', 'read');
    expect(created.code, created.output).toBe(75);
    expect(created.stdout).not.toMatch(/ag_/);
    expect(created.output).toContain(`is in use by auditgraph process ${process.pid} (a running server)`);
    expect(created.output).toMatch(/createApiKey/);
    expect(await keyNames(app!)).toEqual(before);
  }, 60_000);

  it('refuses `keys list`, `keys revoke`, `migrate` and `verify` too, each saying what to do instead', async () => {
    for (const [args, hint] of [
      [['keys', 'list'], /createApiKey, apiKeys and revokeApiKey/],
      [['keys', 'revoke', 'key_x'], /createApiKey, apiKeys and revokeApiKey/],
      [['migrate'], /applied the migrations when it started/],
      [['verify'], /GET \/integrity\/verify/],
    ] as const) {
      const result = await cli(dir, ...args);
      expect(result.code, `${args.join(' ')}: ${result.output}`).toBe(75);
      expect(result.output).toMatch(hint);
    }
  }, 120_000);

  it('refuses a second server on the same folder', async () => {
    await expect(startTestApp('embedded', { env: { AUDITGRAPH_DATA_DIR: dir } })).rejects.toThrow(
      DataFolderInUseError,
    );
  });

  it('lets the CLI in once the server stopped: the key it creates is listed', async () => {
    await app!.stop();
    app = undefined;
    expect(existsSync(pgliteLock())).toBe(false);
    const created = await cli(dir, 'keys', 'create', '--name', 'after-stop', '--scopes', 'read');
    expect(created.code, created.output).toBe(0);
    expect(created.stdout.trim()).toMatch(/^ag_/);
    const listed = await cli(dir, 'keys', 'list');
    expect(listed.stdout).toContain('after-stop');
    expect(existsSync(pgliteLock())).toBe(false);
  }, 60_000);

  it('takes over a lock left by a process that died', async () => {
    await writeFile(pgliteLock(), `${await deadPid()} ${'stale-boot'}\n`);
    const listed = await cli(dir, 'keys', 'list');
    expect(listed.code, listed.output).toBe(0);
    expect(listed.stdout).toContain('after-stop');
  }, 60_000);
});
