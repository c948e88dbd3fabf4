// Budgets for meterkit/react (issues 4 and 13): gzipped JavaScript a page ships, bundled by
// esbuild from the source (minified, production). `npm run bench` prints the same figures.
// Each usage component has its own budget, measured with the provider it needs; that none
// pulls in another it does not render is tested in test/react/treeShaking.test.tsx.
const peers = ["react", "react-dom", "@tanstack/react-query", "zustand"];
const define = { "process.env.NODE_ENV": '"production"' };
const modifyEsbuildConfig = (config) => ({ ...config, define: { ...config.define, ...define }, jsx: "automatic" });
// size-limit always adds package.json peerDependencies to the externals; this check wants
// react-query and zustand inside the bundle, so it sets the externals itself.
const bundleAllButReact = (config) => ({ ...modifyEsbuildConfig(config), external: ["react", "react-dom"] });

module.exports = [
  {
    // Was 2.49 kB (0.1); issue 13 added typed messages with plural rules and <bdi>, unlimited
    // counters, the state icon and its announcement, the narrowing result union: 3.15 kB, trimmed
    // by hand to 3.10 kB, then restructured without dropping any of it to 2.95 kB: the badge is
    // written with createElement (no react/jsx-runtime import), the stream follows tab
    // visibility itself (the provider's effect is one call), `send`/`request` are module
    // functions over one per-provider instance object (no transport closures, no limit-store
    // memo), and one fill() serves text and <bdi> nodes. 2.935 kB since request() gives a
    // body-less error answer its code and message by destructuring defaults. Nothing here is
    // code the badge does not run (test/react/treeShaking.test.tsx lists the files).
    // What each part costs, as the size-limit figure loses it without that part (bytes, gzip):
    // the live stream 491 (of it tab visibility 70, the server's retry: hint 29, the Accept
    // header 18, jitter 14, the stale-stream watchdog 10, the hidden-tab grace 5); number
    // formatting 284 (unit names and plural rules 100, compact notation 22, currency minor
    // units 17); the tooltip 126 (its renewal date 62); the counter view 150; the English
    // defaults 135; error answers as MeterRequestError 91; the result union 79; announcements
    // 69; the state icon 47; the provider's own QueryClient 25; <bdi> 19; the poll fallback 35.
    // Tried and not kept: short names for six internal fields (-11, not worth unreadable
    // internals); and, gaining nothing because gzip already shares the repeats, deps from
    // Object.values (+2), one effect for mount and stream (+1), a lookup table for the state
    // cue (+7), toLocaleString instead of Intl objects (+1), TanStack's focusManager for
    // visibility (+2). 2.5 kB would take more than the tooltip and every stream robustness
    // feature (visibility, grace, retry hint, jitter, watchdog, Accept) together: 2.67 kB
    // without all of them; the rest is what issue 13 asks for. The native EventSource cannot
    // send the provider's headers or fetch and hides the heartbeats the watchdog needs, so the
    // fetch reader stays.
    name: "meterkit/react: MeterProvider + useUsage + BalanceBadge (own code)",
    path: "src/react/index.ts",
    import: "{ MeterProvider, useUsage, BalanceBadge }",
    ignore: peers,
    gzip: true,
    limit: "2.94 kB",
    modifyEsbuildConfig,
  },
  ...[
    ["UsageMeter", "3.05 kB"],
    ["CreditPacks", "3.5 kB"],
    ["UsageHistory", "4.4 kB"],
    ["LimitReachedDialog", "5.9 kB"],
    // 2.49 kB before its strings moved into the messages (plural rule, <bdi>) and its load error got a retry.
    // 2.87 kB since useAutoTopUp sends an Idempotency-Key per change (the server applies a retried change once);
    // 2.77 kB with the provider's restructuring above; 2.76 kB with request()'s defaults.
    ["AutoTopUpStatus", "2.8 kB"],
  ].map(([component, limit]) => ({
    name: `meterkit/react: MeterProvider + ${component} (own code)`,
    path: "src/react/index.ts",
    import: `{ MeterProvider, ${component} }`,
    ignore: peers,
    gzip: true,
    limit,
    modifyEsbuildConfig,
  })),
  {
    name: "meterkit/react: whole kit (own code)",
    path: "src/react/index.ts",
    import: "*",
    ignore: peers,
    gzip: true,
    limit: "11.7 kB",
    modifyEsbuildConfig,
  },
  {
    name: "meterkit/react: MeterProvider + BalanceBadge, react-query and zustand bundled",
    path: "src/react/index.ts",
    import: "{ MeterProvider, BalanceBadge }",
    ignore: ["react", "react-dom"],
    gzip: true,
    limit: "12.8 kB",
    modifyEsbuildConfig: bundleAllButReact,
  },
];
