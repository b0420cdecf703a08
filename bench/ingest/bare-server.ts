/**
 * The baseline for bench/ingest/run.ts: a bare `node:http` server that reads a
 * POST body to the end and answers 202 with a JSON body of the same size as
 * `POST /log`'s. No parsing, no auth, no queue: the ceiling for one Node process.
 * GET answers 200 so the runner's readiness probe works unchanged.
 *
 *   PORT=18080 node --import tsx bench/ingest/bare-server.ts
 */
import http from 'node:http';

const port = Number(process.env.PORT ?? 18080);
const host = process.env.HOST ?? '127.0.0.1';
const accepted = JSON.stringify({ status: 'accepted', event_id: '019ac0de-0000-7000-8000-000000000000' });
const ready = JSON.stringify({ status: 'ready' });

const server = http.createServer({ keepAliveTimeout: 65_000 }, (request, response) => {
  const reply = (status: number, payload: string) => {
    response.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(payload),
    });
    response.end(payload);
  };
  if (request.method !== 'POST') {
    request.resume();
    reply(200, ready);
    return;
  }
  let received = 0;
  request.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  request.on('end', () => reply(received > 0 ? 202 : 400, accepted));
});

server.listen(port, host, () => console.log(`bare server listening on http://${host}:${port}`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
