/**
 * The flooding client of bench/flood, in its own process so its work does not
 * delay the probes' timers: `connections` keep-alive connections, each posting
 * the same GraphQL document to /graphql again as soon as the last answer came.
 * With `rate`, it sends that many per second on a timer instead, whatever the answers.
 * Driven over IPC: `start` (url, apiKey, query, connections, rate), then `stop`,
 * answered by `report` (requests answered, by status, and the seconds they took).
 */
import http from 'node:http';

interface Start {
  type: 'start';
  url: string;
  apiKey: string;
  query: string;
  connections: number;
  /** Requests per second on a timer (open loop) instead of each connection's next as soon as answered. */
  rate?: number;
}

let running = false;
let loops: Array<Promise<void>> = [];
let counts = new Map<number, number>();
let startedAt = 0;

function send(agent: http.Agent, url: URL, headers: http.OutgoingHttpHeaders, body: Buffer): Promise<void> {
  return new Promise<void>((resolve) => {
    const request = http.request(url, { method: 'POST', agent, headers }, (response) => {
      response.on('data', () => undefined);
      response.on('end', () => {
        counts.set(response.statusCode ?? 0, (counts.get(response.statusCode ?? 0) ?? 0) + 1);
        resolve();
      });
    });
    request.on('error', () => {
      counts.set(0, (counts.get(0) ?? 0) + 1);
      setTimeout(resolve, 10);
    });
    request.end(body);
  });
}

async function loop(agent: http.Agent, url: URL, headers: http.OutgoingHttpHeaders, body: Buffer) {
  while (running) await send(agent, url, headers, body);
}

async function onTimer(
  rate: number,
  agent: http.Agent,
  url: URL,
  headers: http.OutgoingHttpHeaders,
  body: Buffer,
) {
  const sent: Array<Promise<void>> = [];
  const from = performance.now();
  while (running) {
    const due = Math.floor(((performance.now() - from) / 1000) * rate) + 1;
    while (sent.length < due) sent.push(send(agent, url, headers, body));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await Promise.all(sent);
}

process.on('message', (message: Start | { type: 'stop' }) => {
  if (message.type === 'start') {
    const body = Buffer.from(JSON.stringify({ query: message.query }));
    const headers = {
      'content-type': 'application/json',
      'content-length': body.length,
      'x-api-key': message.apiKey,
    };
    const agent = new http.Agent({ keepAlive: true, maxSockets: message.connections });
    const url = new URL('/graphql', message.url);
    running = true;
    counts = new Map();
    startedAt = performance.now();
    const { rate } = message;
    loops =
      rate === undefined
        ? Array.from({ length: message.connections }, () => loop(agent, url, headers, body))
        : [onTimer(rate, agent, url, headers, body)];
    process.send?.({ type: 'started' });
  } else {
    running = false;
    const seconds = (performance.now() - startedAt) / 1000;
    void Promise.all(loops).then(() =>
      process.send?.({ type: 'report', seconds, statuses: Object.fromEntries(counts) }),
    );
  }
});
process.send?.({ type: 'ready' });
