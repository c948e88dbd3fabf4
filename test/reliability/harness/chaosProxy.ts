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
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of Postgres whose connections the test can drop at any moment, the
 * way a NAT timeout, a load balancer or a network blip drops them. A refused upstream (the
 * database is down) closes the client side at once.
 */
export async function startChaosProxy(target: { host?: string; port: number }): Promise<ChaosProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((client) => {
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
    close: () =>
      new Promise<void>((resolve) => {
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
