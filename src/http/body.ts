import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import { AppError, badRequest } from '../errors.js';
import { textChangedByParsing } from '../ingest/json-text.js';

/**
 * Reads a JSON request body of at most `limitBytes`: the value, and the text it
 * was parsed from. A declared length over the limit is refused before a byte is read.
 * Refuses what parsing would silently change: bytes that are not UTF-8 (decoding
 * would replace them with U+FFFD), numbers a double cannot hold exactly, and
 * repeated keys.
 * @throws AppError UNSUPPORTED_MEDIA_TYPE, PAYLOAD_TOO_LARGE or BAD_REQUEST (malformed JSON,
 * invalid UTF-8, inexact numbers, each named as such).
 */
export async function readJsonBody(
  request: IncomingMessage,
  limitBytes: number,
): Promise<{ value: unknown; text: string }> {
  const contentType = request.headers['content-type'];
  if (contentType !== undefined && !/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(contentType)) {
    throw new AppError(
      'UNSUPPORTED_MEDIA_TYPE',
      `Content-Type must be application/json, not '${contentType}'.`,
    );
  }
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) throw tooLarge(limitBytes);

  const { chunks, received } =
    request.complete && !request.readableFlowing
      ? readBuffered(request, limitBytes)
      : await readStreamed(request, limitBytes);
  if (received === 0) throw badRequest('Request body is empty; send a JSON object.');
  const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  if (!isUtf8(bytes)) throw badRequest('Request body is not valid UTF-8; send JSON encoded as UTF-8.');
  const text = bytes.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (error) {
    throw badRequest(`Malformed JSON: ${error instanceof Error ? error.message : 'cannot parse'}`);
  }
  const changed = textChangedByParsing(text, value);
  if (changed.length > 0) {
    const summary = changed.map((problem) => `${problem.field} ${problem.message}`).join('; ');
    throw badRequest(`JSON that would not be stored as sent: ${summary}`, changed);
  }
  return { value, text };
}

/**
 * A small body usually arrives with the headers, and the parser has buffered
 * all of it by the time a route asks: taken synchronously, without the
 * promise and listeners a stream read costs each request.
 */
function readBuffered(request: IncomingMessage, limitBytes: number): { chunks: Buffer[]; received: number } {
  const chunks: Buffer[] = [];
  let received = 0;
  for (let chunk: Buffer | null; (chunk = request.read() as Buffer | null) !== null;) {
    received += chunk.length;
    if (received > limitBytes) throw tooLarge(limitBytes);
    chunks.push(chunk);
  }
  return { chunks, received };
}

function readStreamed(
  request: IncomingMessage,
  limitBytes: number,
): Promise<{ chunks: Buffer[]; received: number }> {
  // Plain events rather than `for await`: the async iterator costs several
  // promises per request on the hottest path of the service. The listeners are
  // inline and unnamed: a named local function costs tsx a `__name` call per request.
  return new Promise<{ chunks: Buffer[]; received: number }>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    request.on('data', (chunk: Buffer) => {
      if (received > limitBytes) return; // refused already; the rest is drained unread
      received += chunk.length;
      if (received > limitBytes) {
        reject(tooLarge(limitBytes));
        return;
      }
      chunks.push(chunk);
    });
    request.once('end', () => resolve({ chunks, received }));
    request.once('error', reject);
    // A client that goes away mid-body must not leave this promise pending forever.
    request.once('close', () => {
      if (!request.complete) reject(badRequest('The request body ended early.'));
    });
  });
}

function tooLarge(limitBytes: number): AppError {
  return new AppError('PAYLOAD_TOO_LARGE', `Request body exceeds the limit of ${limitBytes} bytes.`);
}
