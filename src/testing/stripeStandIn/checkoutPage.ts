import type { ServerResponse } from "node:http";
import type { StandInDelivery, StandInSession } from "./types.js";

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function formatMoney(amount: number, currency: string): string {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency: currency.toUpperCase() }).format(amount / 100);
  } catch {
    return `${amount} ${currency}`;
  }
}

function page(res: ServerResponse, status: number, title: string, inner: string) {
  res.writeHead(status, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>
body{font:16px/1.5 system-ui,sans-serif;background:#f6f7f9;color:#1a1f36;margin:0;display:grid;place-items:center;min-height:100vh}
main{background:#fff;border-radius:12px;box-shadow:0 2px 12px #0002;padding:2rem;max-width:26rem;width:calc(100% - 2rem)}
.dev{background:#fff3cd;color:#664d03;border:1px solid #ffe69c;border-radius:8px;padding:.5rem .75rem;font-size:.9rem;margin:0 0 1.5rem}
.amount{font-size:2rem;font-weight:600;margin:.25rem 0 1.5rem}
form{display:inline}button{font:inherit;border-radius:8px;padding:.6rem 1.2rem;border:1px solid #c0c8d2;background:#fff;cursor:pointer;margin-right:.5rem}
button.pay{background:#635bff;border-color:#635bff;color:#fff}button:focus-visible{outline:3px solid #9f9bff;outline-offset:2px}
</style></head><body><main>
<p class="dev" role="note"><strong>Development only.</strong> This is meterkit's local Stripe stand-in, not Stripe: no card is charged.</p>
${inner}</main></body></html>`);
}

/**
 * The hosted checkout page at `/checkout/:id`: "Pay" (or "Save card" for a `setup` session)
 * completes the session through `pay` and redirects to the success URL once the app's webhook
 * accepted the events; "Cancel" goes back to the cancel URL.
 */
export async function checkoutPage(
  method: string,
  path: string,
  res: ServerResponse,
  deps: { sessions: Map<string, StandInSession>; pay(id: string): Promise<StandInDelivery>; webhookUrl(): string | undefined },
): Promise<void> {
  const m = /^\/checkout\/([^/]+)(?:\/(pay|cancel))?$/.exec(path);
  const s = m ? deps.sessions.get(decodeURIComponent(m[1]!)) : undefined;
  if (!m || !s) return page(res, 404, "Not found", "<h1>Checkout session not found</h1>");
  const action = m[2];
  const setup = s.mode === "setup";
  if (method === "GET" && !action) {
    if (s.status !== "open") return page(res, 410, "Checkout closed", `<h1>This checkout is ${escapeHtml(s.status)}.</h1>`);
    const id = encodeURIComponent(s.id);
    const what = setup
      ? `<h1>Save a card for automatic top-ups</h1><p>The stand-in saves a test card; nothing is charged now.</p>`
      : `<h1>${escapeHtml(s.description)}</h1><p class="amount">${escapeHtml(formatMoney(s.amount_total, s.currency))}</p>`;
    return page(
      res,
      200,
      setup ? "Save a card" : `Pay ${s.description}`,
      `${what}
<form method="post" action="/checkout/${id}/pay"><button class="pay" type="submit">${setup ? "Save card" : "Pay"}</button></form>
<form method="post" action="/checkout/${id}/cancel"><button type="submit">Cancel</button></form>`,
    );
  }
  if (method === "POST" && action === "cancel") {
    res.writeHead(303, { location: s.cancel_url ?? s.success_url });
    res.end();
    return;
  }
  if (method === "POST" && action === "pay") {
    if (s.status !== "open") return page(res, 410, "Checkout closed", `<h1>This checkout is ${escapeHtml(s.status)}.</h1>`);
    const delivery = await deps.pay(s.id);
    const target = s.success_url.replaceAll("{CHECKOUT_SESSION_ID}", s.id);
    if (delivery.status >= 200 && delivery.status < 300) {
      res.writeHead(303, { location: target });
      res.end();
      return;
    }
    // Real Stripe would retry for days; here the developer should see why the app refused it.
    return page(
      res,
      502,
      "Webhook failed",
      `<h1>${setup ? "Saved" : "Paid"}, but the app's webhook failed</h1><p>${escapeHtml(deps.webhookUrl() ?? "(no webhookUrl)")} answered ${delivery.status || "nothing"}:</p>
<pre style="white-space:pre-wrap">${escapeHtml(delivery.body.slice(0, 2000))}</pre><p><a href="${escapeHtml(target)}">Continue to the app</a></p>`,
    );
  }
  res.writeHead(405, { allow: "GET, POST" });
  res.end();
}
