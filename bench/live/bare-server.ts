/**
 * The ceiling for bench/live: a bare `ws` server doing only what a live feed
 * must do at the least. `POST /log` answers 202 with an id, then the server
 * sends a frame shaped like auditgraph's `eventLogged` message to every
 * connection (broadcast) or to the connections of the event's session
 * (selective, `?session=` on the WebSocket URL). No auth, no queue, no
 * database: the difference to auditgraph is what those cost.
 *
 * Usage: `tsx bench/live/bare-server.ts PORT`; prints `listening PORT`.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

const port = Number(process.argv[2] ?? 0);
const everyone = new Set<WebSocket>();
const bySession = new Map<string, Set<WebSocket>>();
let seq = 0;

const server = http.createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      session_id: string;
      event_type: string;
      payload?: Record<string, unknown>;
    };
    const id = randomUUID();
    const text = JSON.stringify({ status: 'accepted', event_id: id });
    response.writeHead(202, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    response.end(text);
    seq += 1;
    const now = new Date().toISOString();
    const frame = JSON.stringify({
      id: '1',
      type: 'next',
      payload: {
        data: {
          eventLogged: {
            cursor: Buffer.from(`seq:${seq}`).toString('base64url'),
            node: {
              id,
              seq: String(seq),
              eventType: body.event_type,
              sessionId: body.session_id,
              payload: body.payload ?? {},
              receivedAt: now,
            },
          },
        },
      },
    });
    const targets = bySession.size > 0 ? (bySession.get(body.session_id) ?? new Set()) : everyone;
    for (const socket of targets) socket.send(frame);
  });
});

const wss = new WebSocketServer({ server });
wss.on('connection', (socket, request) => {
  const session = new URL(request.url ?? '/', 'http://bare').searchParams.get('session');
  if (session === null) {
    everyone.add(socket);
    socket.once('close', () => everyone.delete(socket));
    return;
  }
  const set = bySession.get(session) ?? new Set<WebSocket>();
  set.add(socket);
  bySession.set(session, set);
  socket.once('close', () => set.delete(socket));
});

server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  console.log(`listening ${typeof address === 'object' && address ? address.port : port}`);
});
