/** Events posted at a steady rate to `POST /log`, each answer's time kept to measure delivery latency from. */
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** Milliseconds on the clock the subscriber process stamps its receipts with. */
export const now = () => performance.timeOrigin + performance.now();

/** Posts `rate` events per second for `seconds`; returns each event's id and the time its 202 arrived. */
export async function postAtRate(
  baseUrl: string,
  apiKey: string,
  rate: number,
  seconds: number,
  sessionOf: (index: number) => string,
): Promise<{ answeredAt: Map<string, number>; startedAt: number; refused: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const url = new URL('/log', baseUrl);
  const answeredAt = new Map<string, number>();
  let refused = 0;
  const inFlight = new Set<Promise<void>>();
  const post = (index: number) =>
    new Promise<void>((resolve) => {
      const body = JSON.stringify({
        session_id: sessionOf(index),
        event_type: 'review_started',
        payload: { code_language: 'typescript', file_count: index % 40 },
      });
      const request = http.request(
        url,
        {
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            'x-api-key': apiKey,
          },
        },
        (response) => {
          let text = '';
          response.on('data', (chunk: Buffer) => (text += chunk.toString()));
          response.on('end', () => {
            const at = now();
            if (response.statusCode === 202) {
              answeredAt.set((JSON.parse(text) as { event_id: string }).event_id, at);
            } else refused += 1;
            resolve();
          });
        },
      );
      request.on('error', () => {
        refused += 1;
        resolve();
      });
      request.end(body);
    });
  const startedAt = now();
  const total = Math.round(rate * seconds);
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((now() - startedAt) / 1000) * rate) + 1);
    while (sent < due) {
      const pending = post(sent);
      inFlight.add(pending);
      void pending.then(() => inFlight.delete(pending));
      sent += 1;
    }
    await sleep(5);
  }
  await Promise.all(inFlight);
  agent.destroy();
  return { answeredAt, startedAt, refused };
}
