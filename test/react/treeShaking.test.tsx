// @vitest-environment node
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const INDEX = fileURLToPath(new URL("../../src/react/index.ts", import.meta.url));

/** The kit's source files that end up with code in a production bundle importing `names`. */
async function bundled(names: string): Promise<string[]> {
  const result = await build({
    stdin: { contents: `export { ${names} } from ${JSON.stringify(INDEX)};`, resolveDir: process.cwd(), loader: "ts" },
    bundle: true,
    write: false,
    minify: true,
    format: "esm",
    jsx: "automatic",
    metafile: true,
    define: { "process.env.NODE_ENV": '"production"' },
    external: ["react", "react-dom", "react/*", "@tanstack/react-query", "zustand", "zustand/*"],
    logLevel: "silent",
  });
  const output = Object.values(result.metafile.outputs)[0]!;
  return Object.entries(output.inputs)
    .filter(([, v]) => v.bytesInOutput > 0)
    .map(([path]) => path.replace(/^.*src\/react\//, ""));
}

describe("tree shaking: a component pulls in only what it renders", () => {
  it("the badge brings no dialog, packs, meter, history or limit store", async () => {
    const files = await bundled("MeterProvider, BalanceBadge");
    expect(files).toContain("BalanceBadge.tsx");
    for (const other of ["LimitReachedDialog.tsx", "Modal.tsx", "CreditPacks.tsx", "BuyCreditsButton.tsx", "UsageMeter.tsx", "UsageHistory.tsx", "limitReachedStore.ts", "useEntries.ts", "useCheckout.ts", "AutoTopUpStatus.tsx", "useAutoTopUp.ts"]) {
      expect(files).not.toContain(other);
    }
  });

  it("UsageMeter brings no badge, packs, dialog or history", async () => {
    const files = await bundled("MeterProvider, UsageMeter");
    expect(files).toContain("UsageMeter.tsx");
    for (const other of ["BalanceBadge.tsx", "CreditPacks.tsx", "BuyCreditsButton.tsx", "LimitReachedDialog.tsx", "Modal.tsx", "UsageHistory.tsx", "useEntries.ts", "useUsageHistory.ts"]) {
      expect(files).not.toContain(other);
    }
  });

  it("CreditPacks brings the buy button it renders, and no dialog, badge, meter or history", async () => {
    const files = await bundled("MeterProvider, CreditPacks");
    expect(files).toEqual(expect.arrayContaining(["CreditPacks.tsx", "BuyCreditsButton.tsx"]));
    for (const other of ["LimitReachedDialog.tsx", "Modal.tsx", "BalanceBadge.tsx", "UsageMeter.tsx", "UsageHistory.tsx", "limitReachedStore.ts"]) {
      expect(files).not.toContain(other);
    }
  });

  it("UsageHistory brings no badge, meter, packs or dialog", async () => {
    const files = await bundled("MeterProvider, UsageHistory");
    expect(files).toEqual(expect.arrayContaining(["UsageHistory.tsx", "useEntries.ts", "useUsageHistory.ts"]));
    for (const other of ["BalanceBadge.tsx", "UsageMeter.tsx", "CreditPacks.tsx", "BuyCreditsButton.tsx", "LimitReachedDialog.tsx", "Modal.tsx"]) {
      expect(files).not.toContain(other);
    }
  });

  it("the dialog brings the packs it renders, and no badge, meter or history", async () => {
    const files = await bundled("MeterProvider, LimitReachedDialog");
    expect(files).toEqual(expect.arrayContaining(["LimitReachedDialog.tsx", "Modal.tsx", "CreditPacks.tsx", "limitReachedStore.ts"]));
    for (const other of ["BalanceBadge.tsx", "UsageMeter.tsx", "UsageHistory.tsx"]) expect(files).not.toContain(other);
  });

  it("AutoTopUpStatus brings its hook and nothing of the usage components", async () => {
    const files = await bundled("MeterProvider, AutoTopUpStatus");
    expect(files).toEqual(expect.arrayContaining(["AutoTopUpStatus.tsx", "useAutoTopUp.ts"]));
    for (const other of ["BalanceBadge.tsx", "UsageMeter.tsx", "UsageHistory.tsx", "CreditPacks.tsx", "LimitReachedDialog.tsx", "useUsage.ts", "format.ts"]) expect(files).not.toContain(other);
  });
});
