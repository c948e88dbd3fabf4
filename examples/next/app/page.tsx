// A server component (no "use client" here): it renders the kit's client components directly,
// which works because every client module of meterkit/react starts with "use client".
import { BalanceBadge, LimitReachedDialog, MeterProvider, formatAmount } from "meterkit/react";
import { Chat } from "./Chat";

export default function Page() {
  return (
    <main>
      <h1>meterkit + Next.js App Router</h1>
      {/* formatAmount is a plain function: it runs here, on the server. */}
      <p>Each question holds at most {formatAmount(100, "tokens", { locale: "en-US" })} for the reply.</p>
      <MeterProvider baseUrl="/api/meter">
        <p>
          Balance: <BalanceBadge />
        </p>
        <Chat />
        <LimitReachedDialog />
      </MeterProvider>
    </main>
  );
}
