/**
 * A TCP load balancer for tests: each connection goes to the first live backend in round-robin
 * order (a backend that refuses is skipped), like an L4 balancer in front of fanout replicas; a
 * test can pin new connections to one backend.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Balancer {
  port: number;
  /** Connections forwarded per backend port. */
  counts: Map<number, number>;
  /** Sends every new connection to this backend port (null: round-robin). */
  pin(port: number | null): void;
  stop(): Promise<void>;
}

export async function startBalancer(
  host: string,
  port: number,
  backends: { host: string; port: number }[],
): Promise<Balancer> {
  let next = 0;
  let pinned: number | null = null;
  const counts = new Map<number, number>();
  const sockets = new Set<Socket>();
  const forward = (client: Socket, tries: number): void => {
    if (tries >= backends.length) {
      client.destroy();
      return;
    }
    const b =
      (pinned !== null ? backends.find((x) => x.port === pinned) : undefined) ??
      backends[next++ % backends.length]!;
    const up = connect(b.port, b.host);
    sockets.add(up);
    up.once('close', () => sockets.delete(up));
    up.once('error', () => {
      if (!up.readyState.startsWith('open')) forward(client, tries + 1);
      else client.destroy();
    });
    up.once('connect', () => {
      counts.set(b.port, (counts.get(b.port) ?? 0) + 1);
      client.pipe(up).pipe(client);
      client.once('close', () => up.destroy());
      up.once('close', () => client.destroy());
      client.resume();
    });
  };
  const srv: Server = createServer({ pauseOnConnect: true }, (client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    forward(client, 0);
  });
  await new Promise<void>((r) => srv.listen(port, host, () => r()));
  return {
    port,
    counts,
    pin: (p) => {
      pinned = p;
    },
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}
