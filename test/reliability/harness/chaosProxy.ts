import { connect, createServer, type Socket } from "node:net";

export interface ChaosProxy {
  port: number;
  /** Connections currently open through the proxy. */
  readonly open: number;
  /**
   * Destroys every open connection at once, in both directions — including those with a
   * statement in flight, so some answers are lost after Postgres has committed them.
   */
  cut(): number;
  /**
   * A partition: from now on nothing is forwarded, on open connections or new ones, and
   * nothing is refused or reset either — bytes are accepted and left unread, the way a
   * network that drops packets looks to both ends. Returns the connections frozen.
   */
  blackHole(): number;
  /** Ends the partition: frozen connections flow again, and held new ones reach the upstream. */
  heal(): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of Postgres whose connections the test can drop at any moment, the
 * way a NAT timeout, a load balancer or a network blip drops them, or freeze (a black hole).
 * A refused upstream (the database is down) closes the client side at once.
 */
export async function startChaosProxy(target: { host?: string; port: number }): Promise<ChaosProxy> {
  const pairs = new Set<[Socket, Socket]>();
  /** Clients accepted during a black hole, not yet connected upstream. */
  const held = new Set<Socket>();
  let hole = false;

  const forward = (client: Socket) => {
    const upstream = connect(target.port, target.host ?? "127.0.0.1");
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const server = createServer({ pauseOnConnect: true }, (client) => {
    if (!hole) return forward(client);
    // Accepted (the SYN is answered) but never read: the client waits for an answer that never comes.
    held.add(client);
    client.on("error", () => held.delete(client));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    port,
    get open() {
      return pairs.size;
    },
    cut() {
      const n = pairs.size;
      for (const [a, b] of [...pairs]) {
        a.resetAndDestroy();
        b.resetAndDestroy();
      }
      pairs.clear();
      return n;
    },
    blackHole() {
      hole = true;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
      return pairs.size;
    },
    heal() {
      hole = false;
      for (const [a, b] of pairs) {
        a.pipe(b);
        b.pipe(a);
      }
      for (const c of held) if (!c.destroyed) forward(c);
      held.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
        for (const c of held) c.destroy();
        server.close(() => resolve());
      }),
  };
}
