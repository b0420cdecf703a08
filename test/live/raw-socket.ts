import WebSocket from 'ws';

/** A graphql-ws message as it arrived, unparsed beyond JSON. */
export interface RawMessage {
  id?: string;
  type: string;
  payload?: unknown;
}

export interface RawConnection {
  socket: WebSocket;
  /** Every message received so far, in order. */
  messages: RawMessage[];
  /** The close that ended the connection, once it ended. */
  closed: Promise<{ code: number; reason: string }>;
  /** Sends a message object as JSON, or a frame's text as it is. */
  send(message: object | string): void;
  /**
   * The first message (already received or still to come) matching `match`;
   * rejects naming the close code if the connection ends first.
   */
  next(match: (message: RawMessage) => boolean, what?: string): Promise<RawMessage>;
  /** The messages of one operation up to and including its `error` or `complete`, or the close first. */
  outcome(id: string): Promise<{ messages: RawMessage[]; close?: { code: number; reason: string } }>;
  dispose(): void;
}

/**
 * A graphql-transport-ws socket driven message by message, for what the
 * graphql-ws client never sends (bad documents, garbage frames). Resolves
 * once the server acknowledged connection_init with `apiKey`.
 */
export async function openRawSocket(baseUrl: string, apiKey: string): Promise<RawConnection> {
  const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
  const messages: RawMessage[] = [];
  const listeners = new Set<() => void>();
  let closedWith: { code: number; reason: string } | undefined;
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.once('close', (code, reason) => {
      closedWith = { code, reason: reason.toString() };
      resolve(closedWith);
      for (const listener of [...listeners]) listener();
    }),
  );
  socket.on('message', (data: WebSocket.RawData) => {
    messages.push(JSON.parse(String(data)) as RawMessage);
    for (const listener of [...listeners]) listener();
  });
  socket.on('error', () => undefined);

  const next: RawConnection['next'] = (match, what = 'message') =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = messages.find(match);
        if (found) {
          listeners.delete(check);
          resolve(found);
        } else if (closedWith) {
          listeners.delete(check);
          reject(new Error(`connection closed (${closedWith.code} ${closedWith.reason}) before ${what}`));
        }
      };
      listeners.add(check);
      check();
    });

  const connection: RawConnection = {
    socket,
    messages,
    closed,
    send(message) {
      socket.send(typeof message === 'string' ? message : JSON.stringify(message));
    },
    next,
    outcome(id) {
      return new Promise((resolve) => {
        const check = () => {
          const mine = messages.filter((message) => message.id === id);
          if (mine.some((message) => message.type === 'error' || message.type === 'complete')) {
            listeners.delete(check);
            resolve({ messages: mine });
          } else if (closedWith) {
            listeners.delete(check);
            resolve({ messages: mine, close: closedWith });
          }
        };
        listeners.add(check);
        check();
      });
    },
    dispose() {
      socket.close();
    },
  };
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  connection.send({ type: 'connection_init', payload: { 'x-api-key': apiKey } });
  await next((message) => message.type === 'connection_ack', 'connection_ack');
  return connection;
}
