/**
 * The floor of an HTTP hop to the ledger, for `bench/http.ts` and `tools/httpPairCpu.ts`: a bare
 * `node:http` route that reads a JSON body and calls the meter (`reserve` with an
 * `idempotencyKey`, then `commit`), and the caller's side of it. No secret key, routing, shape
 * check, `Idempotency-Key` claim, error mapping or client library: the least an HTTP hop to this
 * meter costs, so the HTTP figures can be read against what any HTTP transport could reach.
 * Bench only; nothing like it ships.
 */
import { Agent, createServer, request, type Server } from "node:http";
import { randomUUID } from "node:crypto";
import type { MeterApi } from "../src/core/types.js";

/** The floor's server: POST /reserve `{ user, key }`, POST /commit `{ reservationId }`. */
export function createFloorServer(meter: MeterApi): Server {
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { user: string; key: string; reservationId: string };
      const answer =
        req.url === "/reserve"
          ? meter.reserve(body.user, "tokens", 1_000, { idempotencyKey: body.key })
          : meter.commit(body.reservationId, { actual: 400 });
      answer.then(
        (r) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(r)),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    });
  });
}

/**
 * The caller's side: a loop body for `loadFor` doing one reserve (1,000) + commit (400) pair for
 * `users[worker]` at `url` over keep-alive sockets (one per caller); returns the pair's ms.
 */
export function floorPair(url: string, users: string[], sockets: number): (worker: number) => Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: sockets });
  const post = (path: string, body: object) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = request(url + path, { method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode === 200) resolve(JSON.parse(text) as Record<string, unknown>);
          else reject(new Error(text));
        });
      });
      req.on("error", reject);
      req.end(JSON.stringify(body));
    });
  return async (w) => {
    const t0 = performance.now();
    const r = await post("/reserve", { user: users[w]!, key: randomUUID() });
    if (!r.allowed) throw new Error("bench reserve denied");
    await post("/commit", { reservationId: r.reservationId });
    return performance.now() - t0;
  };
}
