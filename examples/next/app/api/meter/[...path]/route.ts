// Every meter route the browser kit calls (GET /usage, /usage/stream, /packs, POST /checkout):
// one framework-free handler, mounted under /api/meter.
import { createMeterHandler, type MeterHandler } from "meterkit/server";
import { getMeter, USER_ID } from "@/lib/meter";

export const dynamic = "force-dynamic";

let handler: MeterHandler | undefined;

async function handle(request: Request): Promise<Response> {
  handler ??= createMeterHandler(await getMeter(), { basePath: "/api/meter", identify: () => USER_ID });
  return handler(request);
}

export { handle as GET, handle as POST };
