import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

let requestCounter = 0;
const processTag = randomBytes(4).toString('hex');

/** The caller's X-Request-Id when it is a sane token, else one of ours (unique per process and request). */
export function requestIdOf(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  if (typeof given === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(given)) return given;
  requestCounter += 1;
  return `${processTag}-${requestCounter.toString(36)}`;
}

/** Sends `body` as JSON; `headers` (the caller's own object) gains the content headers. */
export function send(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string>,
): void {
  headers['content-type'] ??= 'application/json; charset=utf-8';
  sendText(response, status, JSON.stringify(body), headers);
}

export function sendText(
  response: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string>,
): void {
  if (response.headersSent) return;
  headers['content-length'] = String(Buffer.byteLength(text));
  response.writeHead(status, headers);
  response.end(text);
}
