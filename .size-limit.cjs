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
    // counters, the state icon and its announcement, the narrowing result union: 3.15 kB, then
    // trimmed without dropping any of it to 3.10 kB. Nothing here is code the badge does not run
    // (test/react/treeShaking.test.tsx lists the files). What each part costs (gzip bytes the
    // bundle loses without it): the stream reader and its reconnects ~0.34 kB, the provider's
    // stream/visibility effect ~0.17 kB, number formatting and unit names ~0.22 kB, the English
    // defaults ~0.12 kB, error answers ~0.11 kB, tooltip, announcements and counter view ~0.09 kB
    // each, the result union and <bdi> templates ~0.08 kB each. 2.5 kB would take dropping one
    // of these features.
    name: "meterkit/react: MeterProvider + useUsage + BalanceBadge (own code)",
    path: "src/react/index.ts",
    import: "{ MeterProvider, useUsage, BalanceBadge }",
    ignore: peers,
    gzip: true,
    limit: "3.1 kB",
    modifyEsbuildConfig,
  },
  ...[
    ["UsageMeter", "3.25 kB"],
    ["CreditPacks", "3.7 kB"],
    ["UsageHistory", "4.6 kB"],
    ["LimitReachedDialog", "6.1 kB"],
    // 2.49 kB before its strings moved into the messages (plural rule, <bdi>) and its load error got a retry.
    // 2.87 kB since useAutoTopUp sends an Idempotency-Key per change (the server applies a retried change once).
    ["AutoTopUpStatus", "2.9 kB"],
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
    limit: "12 kB",
    modifyEsbuildConfig,
  },
  {
    name: "meterkit/react: MeterProvider + BalanceBadge, react-query and zustand bundled",
    path: "src/react/index.ts",
    import: "{ MeterProvider, BalanceBadge }",
    ignore: ["react", "react-dom"],
    gzip: true,
    limit: "13.1 kB",
    modifyEsbuildConfig: bundleAllButReact,
  },
];
