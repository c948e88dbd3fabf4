import { fileURLToPath } from "node:url";
import { storybookTest } from "@storybook/addon-vitest/vitest-plugin";
import { playwright } from "@vitest/browser-playwright";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "./tools/chromium.js";

// Suites the node-partitioned project runs again on the partitioned layout within npm test's
// time budget: the ledger, its HTTP surface, the money paths of Stripe and the model checks.
// Everything else runs on it on demand: MK_TEST_LAYOUT=partitioned npx vitest run --project node
const PARTITIONED_SUITES = [
  "test/server/**/*.test.ts",
  "test/http/**/*.test.ts",
  "test/stripe/webhook.test.ts",
  "test/stripe/clawback.test.ts",
  "test/reliability/moneyModel.test.ts",
  "test/reliability/referenceCheck.test.ts",
];

export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "node",
          environment: "node",
          include: ["test/**/*.test.ts"],
          exclude: ["test/react/**"],
          globalSetup: ["test/helpers/pg-global-setup.ts"],
          setupFiles: ["test/helpers/layout-setup.ts", "test/helpers/batch-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        // The ledger suites again on tables hash-partitioned by user id (docs/scale.md): every
        // meter.migrate() converts its schema (test/helpers/layout.ts).
        extends: true,
        test: {
          name: "node-partitioned",
          environment: "node",
          include: PARTITIONED_SUITES,
          // Converts its own schema and checks plans, on either layout.
          exclude: ["test/server/partitionPruning.test.ts"],
          env: { MK_TEST_LAYOUT: "partitioned" },
          globalSetup: ["test/helpers/pg-global-setup.ts"],
          setupFiles: ["test/helpers/layout-setup.ts", "test/helpers/batch-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        // meterkit/react: hooks and components in jsdom; *.server.test.tsx render in node (SSR).
        extends: true,
        plugins: [react()],
        test: {
          name: "jsdom",
          environment: "jsdom",
          include: ["test/react/**/*.test.tsx"],
          setupFiles: ["test/react/setup.ts"],
        },
      },
      {
        // Every story rendered in real Chromium, its play function run, axe violations failing.
        extends: true,
        plugins: [storybookTest({ configDir: fileURLToPath(new URL(".storybook", import.meta.url)) })],
        test: {
          name: "storybook",
          browser: {
            enabled: true,
            headless: true,
            provider: playwright({
              launchOptions: { executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS },
            }),
            instances: [{ browser: "chromium" }],
          },
        },
      },
    ],
  },
});
