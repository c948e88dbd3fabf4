// Server process B of the cross-process test: the meter handler on its own port, against the
// database named by DATABASE_URL. Prints {"port": n} once it listens; exits on SIGTERM.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createMeter, createMeterHandler, toNodeHandler } from "../../src/server/index.js";

const meter = createMeter({ database: process.env.DATABASE_URL!, plans: JSON.parse(process.env.PLANS!), sweepInterval: 0 });
const handler = createMeterHandler<unknown>(meter, {
  identify: (request) => request.headers.get("x-session"),
  secretKeys: process.env.SECRET_KEY,
});
const server = createServer(toNodeHandler(handler));
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port, pid: process.pid }) + "\n");
});
process.on("SIGTERM", () => {
  server.closeAllConnections();
  server.close();
  void meter.close().finally(() => process.exit(0));
});
