import { internalsOf } from "../../src/server/internals.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { APP, stripeTest, type StripeTest } from "./helpers.js";

// A redirect URL is checked on its parsed form; what goes to Stripe must be that same parsed
// form, or Stripe (and the browser after it) may read the raw string differently.
let t: StripeTest;
beforeAll(async () => {
  t = await stripeTest({ stripe: { allowedRedirectOrigins: [APP] } });
});
afterAll(async () => {
  await t?.cleanup();
});

const lastSession = () => t.standIn.requests.filter((r) => r.path === "/v1/checkout/sessions").at(-1)!.body as Record<string, string>;

describe("checkout redirect URLs", () => {
  test.each([
    ["a backslash before @", `${APP}\\@evil.example/`, `${APP}/@evil.example/`],
    ["no slashes after the scheme", "https:app.example.com/done", `${APP}/done`],
    ["upper-case scheme and host", "HTTPS://APP.EXAMPLE.COM/Done", `${APP}/Done`],
    ["the default port spelled out", "https://app.example.com:443/p", `${APP}/p`],
  ])("%s: Stripe gets the normalised URL that was checked", async (_name, raw, sent) => {
    await internalsOf(t.meter).billing!.checkout("alice", { packId: "starter", successUrl: raw, cancelUrl: raw });
    const body = lastSession();
    expect(body.success_url).toBe(sent);
    expect(body.cancel_url).toBe(sent);
    expect(new URL(body.success_url!).origin).toBe(APP);
  });

  test.each([
    ["CR LF", `${APP}/ok\r\nSet-Cookie: x=1`],
    ["a tab in the host", "https://app.exa\tmple.com/x"],
    ["a NUL", `${APP}/ok\u0000`],
    ["DEL", `${APP}/ok\u007f`],
  ])("a URL with control characters (%s) is refused, not cleaned up", async (_name, raw) => {
    const n = t.standIn.requests.length;
    const err = await internalsOf(t.meter).billing!.checkout("alice", { packId: "starter", successUrl: raw }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "invalid_request", details: { field: "successUrl" } });
    expect(t.standIn.requests.length).toBe(n);
  });

  test("Stripe's {CHECKOUT_SESSION_ID} placeholder survives normalisation, in the path and in the query", async () => {
    await internalsOf(t.meter).billing!.checkout("alice", {
      packId: "starter",
      successUrl: `${APP}/done/{CHECKOUT_SESSION_ID}?s={CHECKOUT_SESSION_ID}`,
    });
    expect(lastSession().success_url).toBe(`${APP}/done/{CHECKOUT_SESSION_ID}?s={CHECKOUT_SESSION_ID}`);
  });
});
