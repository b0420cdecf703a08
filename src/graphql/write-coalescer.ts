import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/**
 * Holds back a connection's writes until the current turn of the event loop
 * ends, so the frames of every event delivered in that turn leave in one
 * system call. A broadcast's cost is mostly that call, once per socket and
 * write; when announcements queue up under load, a turn delivers several
 * events and the cost per event falls instead of the backlog growing.
 */
export function createWriteCoalescer() {
  const corked = new Set<Duplex>();
  const uncorkAll = () => {
    for (const transport of corked) transport.uncork();
    corked.clear();
  };
  return (socket: WebSocket) => {
    // ws keeps its TCP socket as `_socket` (not in its types); its own cork around a frame nests in ours.
    const transport = (socket as unknown as { _socket?: Duplex })._socket;
    if (!transport || corked.has(transport)) return;
    if (corked.size === 0) process.nextTick(uncorkAll);
    corked.add(transport);
    transport.cork();
  };
}
