/**
 * Subscriber side of bench/live: one process holding many WebSocket
 * connections, driven by its parent over IPC. Speaks the graphql-ws protocol to
 * auditgraph, and to the bare server simply connects (the bare server pushes
 * the same frames without a handshake). Counts every message; records receipt
 * times of a sample of connections for the latency figures.
 */
import WebSocket from 'ws';
import { connectRaw, type RawSocket } from './raw-client.js';

interface ConnectCommand {
  type: 'connect';
  url: string;
  protocol: 'graphql-ws' | 'bare';
  apiKey: string;
  connections: number;
  /** Subscribe connection i to session `${sessionPrefix}${i}`; all events when undefined. */
  sessionPrefix?: string;
  query: string;
  sampleEvery: number;
  /** `raw` (default): the minimal client of raw-client.ts; `ws`: the ws library's client. */
  client: 'raw' | 'ws';
}

type Command = ConnectCommand | { type: 'reset' } | { type: 'report' } | { type: 'close' };

const send = (message: unknown) => process.send?.(message);
const now = () => performance.timeOrigin + performance.now();

let sockets: Array<WebSocket | RawSocket> = [];
let messages = 0;
let firstAt = 0;
let lastAt = 0;
const receipts = new Map<string, number[]>();
const NODE_ID = '"node":{"id":"';

function record(data: Buffer | WebSocket.RawData, sampled: boolean): void {
  messages += 1;
  const at = now();
  if (firstAt === 0) firstAt = at;
  lastAt = at;
  if (!sampled) return;
  const text = data.toString();
  const start = text.indexOf(NODE_ID);
  if (start < 0) return;
  const id = text.slice(start + NODE_ID.length, start + NODE_ID.length + 36);
  const times = receipts.get(id) ?? [];
  times.push(at);
  receipts.set(id, times);
}

/** The graphql-ws messages a subscriber sends: connection_init, then one subscription (to its session, if any). */
function handshakeOf(
  command: ConnectCommand,
  session: string | undefined,
): { init: string; subscribe: string } {
  const variables = session === undefined ? {} : { filter: { sessionId: session } };
  return {
    init: JSON.stringify({ type: 'connection_init', payload: { 'x-api-key': command.apiKey } }),
    subscribe: JSON.stringify({ id: '1', type: 'subscribe', payload: { query: command.query, variables } }),
  };
}

async function connectRawOne(command: ConnectCommand, index: number): Promise<RawSocket> {
  const session = command.sessionPrefix === undefined ? undefined : `${command.sessionPrefix}${index}`;
  const sampled = index % command.sampleEvery === 0;
  if (command.protocol === 'bare') {
    const url = session === undefined ? command.url : `${command.url}?session=${encodeURIComponent(session)}`;
    return connectRaw(url, undefined, (payload) => record(payload, sampled));
  }
  let acknowledged: (ack: string) => void = () => undefined;
  const ack = new Promise<string>((resolve) => (acknowledged = resolve));
  let handshaking = true;
  const socket = await connectRaw(command.url, 'graphql-transport-ws', (payload) => {
    if (!handshaking) return record(payload, sampled);
    handshaking = false;
    acknowledged(payload.toString());
  });
  socket.send(handshakeOf(command, session).init);
  const answer = await ack;
  if (!answer.includes('connection_ack')) throw new Error(`no ack: ${answer}`);
  socket.send(handshakeOf(command, session).subscribe);
  return socket;
}

async function connectAll(command: ConnectCommand): Promise<void> {
  const opened: Array<WebSocket | RawSocket> = [];
  const connectOne = (index: number): Promise<void> =>
    command.client === 'raw'
      ? connectRawOne(command, index).then((socket) => void opened.push(socket))
      : connectWs(index);
  const connectWs = (index: number) =>
    new Promise<void>((resolve, reject) => {
      const session = command.sessionPrefix === undefined ? undefined : `${command.sessionPrefix}${index}`;
      const url =
        command.protocol === 'bare' && session !== undefined
          ? `${command.url}?session=${encodeURIComponent(session)}`
          : command.url;
      // The clients are the measuring instrument, not the system measured: skipping UTF-8
      // validation leaves more of the two cores to the servers, alike for both.
      const socket = new WebSocket(
        url,
        command.protocol === 'graphql-ws' ? 'graphql-transport-ws' : undefined,
        { skipUTF8Validation: true },
      );
      const sampled = index % command.sampleEvery === 0;
      socket.once('error', reject);
      socket.once('open', () => {
        opened.push(socket);
        if (command.protocol === 'bare') {
          socket.on('message', (data) => record(data, sampled));
          return resolve();
        }
        socket.send(handshakeOf(command, session).init);
        socket.once('message', (ack) => {
          if (!ack.toString().includes('connection_ack'))
            return reject(new Error(`no ack: ${ack.toString()}`));
          socket.on('message', (data) => record(data, sampled));
          socket.send(handshakeOf(command, session).subscribe);
          resolve();
        });
      });
    });
  // A few hundred handshakes at a time: each costs the server a key check and a rate-limit hit.
  for (let index = 0; index < command.connections; index += 200) {
    const chunk = Array.from({ length: Math.min(200, command.connections - index) }, (_, j) =>
      connectOne(index + j),
    );
    await Promise.all(chunk);
  }
  sockets = opened;
}

process.on('message', (command: Command) => {
  void (async () => {
    try {
      switch (command.type) {
        case 'connect':
          await connectAll(command);
          send({ type: 'connected', connections: sockets.length });
          break;
        case 'reset':
          messages = 0;
          firstAt = 0;
          lastAt = 0;
          receipts.clear();
          send({ type: 'reset' });
          break;
        case 'report':
          send({ type: 'report', messages, firstAt, lastAt, receipts: [...receipts.entries()] });
          break;
        case 'close':
          for (const socket of sockets) {
            if ('terminate' in socket) socket.terminate();
            else socket.close();
          }
          sockets = [];
          send({ type: 'closed' });
          break;
      }
    } catch (error) {
      send({ type: 'error', message: error instanceof Error ? error.message : String(error) });
    }
  })();
});
send({ type: 'ready' });
