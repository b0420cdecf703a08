/**
 * A minimal WebSocket client for the measuring side: an HTTP upgrade on a
 * plain TCP socket and a frame parser that counts messages without building
 * them. `ws`'s client spends most of a core receiving 50,000 messages/s (a
 * stream, events and a Buffer per frame); this leaves those cycles to the
 * servers measured, alike for auditgraph and the bare server.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';

const OPCODE_TEXT = 0x1;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;

export interface RawSocket {
  send(text: string): void;
  close(): void;
}

/** A client frame: always masked (RFC 6455 §5.3); an all-zero mask leaves the payload as is. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.alloc(header + 4 + length);
  frame[0] = 0x80 | opcode;
  if (length < 126) frame[1] = 0x80 | length;
  else if (length < 65_536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  payload.copy(frame, header + 4);
  return frame;
}

/**
 * Opens `url` with `protocol` and calls `onMessage` with each text message's
 * payload bytes (a view into the received chunk: read it before returning).
 */
export function connectRaw(
  url: string,
  protocol: string | undefined,
  onMessage: (payload: Buffer) => void,
): Promise<RawSocket> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(target.port), target.hostname);
    socket.setNoDelay(true);
    let pending: Buffer = Buffer.alloc(0);
    let upgraded = false;
    const raw: RawSocket = {
      send: (text) => socket.write(clientFrame(OPCODE_TEXT, Buffer.from(text))),
      close: () => socket.destroy(),
    };
    socket.once('error', reject);
    socket.on('connect', () => {
      socket.write(
        `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\n` +
          `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
          (protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : '') +
          '\r\n',
      );
    });
    socket.on('data', (chunk: Buffer) => {
      let buffer = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) {
          pending = buffer;
          return;
        }
        const status = buffer.subarray(0, buffer.indexOf('\r\n')).toString();
        if (!status.includes(' 101 ')) {
          socket.destroy();
          return reject(new Error(`upgrade refused: ${status}`));
        }
        upgraded = true;
        buffer = buffer.subarray(end + 4);
        resolve(raw);
      }
      let offset = 0;
      while (buffer.length - offset >= 2) {
        const opcode = buffer[offset]! & 0x0f;
        let length = buffer[offset + 1]! & 0x7f;
        let header = 2;
        if (length === 126) {
          if (buffer.length - offset < 4) break;
          length = buffer.readUInt16BE(offset + 2);
          header = 4;
        } else if (length === 127) {
          if (buffer.length - offset < 10) break;
          length = Number(buffer.readBigUInt64BE(offset + 2));
          header = 10;
        }
        if (buffer.length - offset < header + length) break;
        const payload = buffer.subarray(offset + header, offset + header + length);
        offset += header + length;
        if (opcode === OPCODE_TEXT) onMessage(payload);
        else if (opcode === OPCODE_PING) socket.write(clientFrame(OPCODE_PONG, Buffer.from(payload)));
        else if (opcode === OPCODE_CLOSE) socket.destroy();
      }
      pending = offset === buffer.length ? Buffer.alloc(0) : Buffer.from(buffer.subarray(offset));
    });
  });
}
