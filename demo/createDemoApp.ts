import { existsSync } from "node:fs";
import { join } from "node:path";
import express, { type Express } from "express";
import { meterErrorHandler, meterRouter, MeterError } from "../src/express/index.js";
import type { Meter } from "../src/server/index.js";
import { chatRoute } from "./chatRoute.js";
import { DEMO_MODEL, DEMO_USER, REPLY_LIMITS } from "./constants.js";
import { resetDemoUser } from "./resetDemoUser.js";
import { readHoldOutcome, readUsageHistory } from "./usageHistory.js";

export interface DemoAppOptions {
  meter: Meter;
  /** The demo plan's id (Reset subscribes the user to it again). */
  planId: string;
  /** Mean milliseconds per streamed word of the simulated model. */
  wordMs: number;
  /** The built page (Vite's output directory). */
  webRoot: string;
  /** `"stand-in"` or `"stripe"`: shown on the page so nobody mistakes one for the other. */
  payments: "stand-in" | "stripe";
}

/**
 * The demo's Express app:
 *
 * - `/api/meter/*`: meterkit's routes (usage, live stream, packs, checkout, Stripe webhook),
 *   mounted first so the webhook sees the raw body;
 * - `POST /api/chat`: the metered chat (see chatRoute.ts);
 * - `GET /api/history`, `GET /api/holds/:id`, `POST /api/reset`, `GET /api/demo`: the demo's own routes;
 * - everything else: the page.
 */
export function createDemoApp({ meter, planId, wordMs, webRoot, payments }: DemoAppOptions): Express {
  const app = express();
  app.disable("x-powered-by");
  // No sign-in in the demo: every request is the demo user. A real app reads its session here.
  const identify = () => DEMO_USER;

  app.use("/api/meter", meterRouter(meter, { identify }));
  app.use(express.json({ limit: "200kb" }));

  app.post("/api/chat", chatRoute({ meter, userId: identify, wordMs }));

  app.get("/api/demo", (_req, res) => {
    res.set("cache-control", "no-store").json({ userId: DEMO_USER, model: DEMO_MODEL, replyLimits: REPLY_LIMITS, payments });
  });

  app.get("/api/history", async (_req, res, next) => {
    try {
      res.set("cache-control", "no-store").json(await readUsageHistory(meter, identify()));
    } catch (err) {
      next(err);
    }
  });

  app.get("/api/holds/:id", async (req, res, next) => {
    try {
      const outcome = await readHoldOutcome(meter, identify(), req.params.id);
      if (!outcome) throw new MeterError("not_found", "No such reservation.");
      res.set("cache-control", "no-store").json(outcome);
    } catch (err) {
      next(err);
    }
  });

  app.post("/api/reset", async (_req, res, next) => {
    try {
      await resetDemoUser(meter, identify(), planId);
      res.status(204).end();
    } catch (err) {
      next(err);
    }
  });

  app.use("/api", (req, _res, next) => next(new MeterError("not_found", `No route ${req.method} ${req.originalUrl}.`)));
  // LimitReachedError → 402 limit_reached (the page's limit dialog opens on it); other MeterErrors by their code.
  app.use(meterErrorHandler());
  app.use("/api", ((err, _req, res, _next) => {
    // express.json() refusing a body: the client's mistake, not ours.
    const status = (err as { status?: unknown }).status;
    if (typeof status === "number" && status >= 400 && status < 500) {
      return res.status(status).json({ error: { code: status === 413 ? "payload_too_large" : "invalid_request", message: "The request body is not valid JSON." } });
    }
    console.error("demo: request failed", err);
    res.status(500).json({ error: { code: "internal", message: "Internal error." } });
  }) as express.ErrorRequestHandler);

  // The page: built assets (hashed, cacheable) and index.html for every other path (/usage…).
  const index = join(webRoot, "index.html");
  app.use("/assets", express.static(join(webRoot, "assets"), { maxAge: "1y", immutable: true, fallthrough: false }));
  app.use(express.static(webRoot, { index: false }));
  app.use((req, res, next) => {
    if (req.method !== "GET" && req.method !== "HEAD") return next();
    if (!existsSync(index)) return res.status(503).type("text").send("The page is not built yet: run `npm run demo:build`.");
    res.set("cache-control", "no-store").sendFile(index);
  });
  return app;
}
