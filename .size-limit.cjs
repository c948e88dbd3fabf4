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
    // memo), and one fill() serves text and <bdi> nodes. Nothing here is code the badge does not
    // run (test/react/treeShaking.test.tsx lists the files). What is left, as the gzipped bundle
    // loses it without each part: the stream (reader, reconnects, watchdog, visibility) ~0.42 kB,
    // the provider ~0.27 kB, request() with its error answers ~0.15 kB, the counter view ~0.15 kB, the result union
    // ~0.10 kB, the usage query ~0.08 kB, number formatting, unit names and dates ~0.2 kB, the
    // English defaults ~0.12 kB; the badge's own rendering, tooltip and announcements the rest.
    // 2.5 kB would take dropping features (see the report of issue 13, item 8): the native
    // EventSource cannot send the provider's headers or fetch and hides the heartbeats the
    // watchdog needs, so the fetch reader stays.
    name: "meterkit/react: MeterProvider + useUsage + BalanceBadge (own code)",
    path: "src/react/index.ts",
    import: "{ MeterProvider, useUsage, BalanceBadge }",
    ignore: peers,
    gzip: true,
    limit: "2.96 kB",
    modifyEsbuildConfig,
  },
  ...[
    ["UsageMeter", "3.1 kB"],
    ["CreditPacks", "3.55 kB"],
    ["UsageHistory", "4.45 kB"],
    ["LimitReachedDialog", "5.95 kB"],
    // 2.49 kB before its strings moved into the messages (plural rule, <bdi>) and its load error got a retry.
    // 2.87 kB since useAutoTopUp sends an Idempotency-Key per change (the server applies a retried change once);
    // 2.77 kB with the provider's restructuring above.
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
    limit: "11.8 kB",
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
