import net from 'node:net';

/**
 * A port that was free a moment ago on 127.0.0.1, for a server a bench or a test
 * is about to start. Another process may take it meanwhile; on this machine's
 * loopback that has not been seen.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
