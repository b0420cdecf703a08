/**
 * 1b. Instructions per request (`--only ...,instructions`): the user-space
 * instructions each HTTP target spends on a request, counted by valgrind
 * (callgrind), which no other load on the machine moves.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../../../bin/node-flags.mjs';
import { fmtInt } from '../../support/format.js';
import { freePort } from '../../support/ports.js';
import { BIN, childFailed, waitForHttp } from '../../support/processes.js';
import { log } from '../log.js';
import type { Options } from '../options.js';
import { serviceEnv, type Resources } from '../resources.js';
import { HTTP_BODY } from '../../support/load-tool.js';
import { API_KEY, serveVars } from '../serve.js';

const INGEST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface InstructionsResult {
  warmupRequests: number;
  requests: number;
  /** User-space instructions per request (valgrind callgrind's Ir), kernel time not included. */
  bare: number;
  serve: number;
  /** bare / serve: the share of serve's instructions the bare server needs. */
  ratio: number;
}

/**
 * req/s on a shared two-core machine moves by a quarter between runs of the same code (see the
 * README); an instruction count moves by under one percent, so it tells whether a change to the
 * request path made it cheaper. Both targets run under callgrind with counting off, take
 * `warmup` requests (so the JIT has compiled the path), then count over `requests` more.
 */
export async function instructionsPhase(
  options: Options,
  resources: Resources,
  runId: string,
): Promise<InstructionsResult> {
  if (spawnSync('valgrind', ['--version']).error !== undefined)
    throw new Error('valgrind is not installed (apt-get install -y valgrind)');
  const warmupRequests = options.quick ? 1000 : 3000;
  const requests = options.quick ? 3000 : 10_000;
  const dbName = `${runId}_instr`;
  const url = await resources.createDatabase(dbName);
  try {
    const barePort = await freePort();
    const bare = await countInstructions(options, resources, runId, {
      name: 'bare-server',
      args: ['--import', 'tsx', path.join(INGEST, 'bare-server.ts')],
      vars: { PORT: String(barePort), HOST: '127.0.0.1' },
      readyUrl: `http://127.0.0.1:${barePort}/`,
      port: barePort,
      warmupRequests,
      requests,
    });
    const stream = `${runId}:instructions`;
    resources.addStream(stream);
    const port = await freePort();
    const serve = await countInstructions(options, resources, runId, {
      name: 'serve',
      args: [...NODE_FLAGS, BIN, 'serve'],
      vars: await serveVars(options, url, stream, port),
      readyUrl: `http://127.0.0.1:${port}/health/ready`,
      port,
      warmupRequests,
      requests,
    });
    await resources.deleteStream(stream);
    return { warmupRequests, requests, bare, serve, ratio: bare / serve };
  } finally {
    await resources.dropDatabase(dbName);
  }
}

async function countInstructions(
  options: Options,
  resources: Resources,
  runId: string,
  target: {
    name: string;
    args: string[];
    vars: Record<string, string>;
    readyUrl: string;
    port: number;
    warmupRequests: number;
    requests: number;
  },
): Promise<number> {
  const outFile = path.join(os.tmpdir(), `${runId}-${target.name}.callgrind`);
  const child = resources.startChild(
    `${target.name} (callgrind)`,
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      `--callgrind-out-file=${outFile}`,
      process.execPath,
      ...target.args,
    ],
    target.vars,
  );
  // callgrind_control finds the process by a name made of the user and HOST variables: same environment.
  const control = (state: 'on' | 'off') => {
    const result = spawnSync('callgrind_control', ['-i', state, String(child.proc.pid)], {
      env: serviceEnv(target.vars),
      encoding: 'utf8',
    });
    if (result.status !== 0) throw new Error(`callgrind_control -i ${state} failed: ${result.stderr}`);
  };
  try {
    // Everything runs some 50 times slower under valgrind, start-up too.
    await waitForHttp(target.readyUrl, { child, timeoutMs: 600_000 });
    log(`instructions: ${target.name} under callgrind, ${fmtInt(target.warmupRequests)} requests to warm up`);
    await postMany(target.port, target.warmupRequests, options.connections);
    control('on');
    await postMany(target.port, target.requests, options.connections);
    control('off');
  } finally {
    await resources.stop(child, 120_000);
  }
  try {
    // "totals:" closes the file; its header's "summary:" was written while counting was still off.
    const totals = /^totals:\s*(\d+)/m.exec(readFileSync(outFile, 'utf8'));
    if (!totals) throw childFailed(child, `left no instruction count in ${outFile}`);
    const perRequest = Number(totals[1]) / target.requests;
    log(`  ${target.name}: ${fmtInt(perRequest)} instructions per request`);
    return perRequest;
  } finally {
    rmSync(outFile, { force: true });
  }
}

/** `count` POSTs of the benchmark's body over `connections` keep-alive connections; any non-2xx fails. */
async function postMany(port: number, count: number, connections: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  let started = 0;
  let finished = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const next = () => {
        if (started >= count) return;
        started += 1;
        const request = http.request(
          {
            host: '127.0.0.1',
            port,
            path: '/log',
            method: 'POST',
            agent,
            // As wrk sends it: a declared length, not a chunked body.
            headers: {
              'content-type': 'application/json',
              'content-length': String(Buffer.byteLength(HTTP_BODY)),
              'x-api-key': API_KEY,
            },
          },
          (response) => {
            if ((response.statusCode ?? 0) >= 300) {
              reject(new Error(`POST /log answered ${response.statusCode}`));
              return;
            }
            response.resume();
            response.once('end', () => {
              finished += 1;
              if (finished === count) resolve();
              else next();
            });
          },
        );
        request.once('error', reject);
        request.end(HTTP_BODY);
      };
      for (let i = 0; i < Math.min(connections, count); i += 1) next();
    });
  } finally {
    agent.destroy();
  }
}
