/** An HTTP client for the query bench: one keep-alive connection, sequential requests, each timed to its last byte. */
import http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface Reply {
  status: number;
  body: string;
  ms: number;
}

export function createClient(port: number, apiKey: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return {
    request(method: 'GET' | 'POST', pathAndQuery: string, body?: unknown): Promise<Reply> {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      return new Promise((resolve, reject) => {
        const started = performance.now();
        const req = http.request(
          {
            host: '127.0.0.1',
            port,
            method,
            path: pathAndQuery,
            agent,
            headers: {
              'x-api-key': apiKey,
              accept: 'application/json',
              ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                body: Buffer.concat(chunks).toString('utf8'),
                ms: performance.now() - started,
              }),
            );
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(payload);
      });
    },
    close: () => agent.destroy(),
  };
}
export type Client = ReturnType<typeof createClient>;
