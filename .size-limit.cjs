// Budgets for meterkit/react (issue 4): gzipped JavaScript a page ships, bundled by esbuild
// from the source (minified, production). `npm run bench` prints the same figures.
const peers = ["react", "react-dom", "@tanstack/react-query", "zustand"];
const define = { "process.env.NODE_ENV": '"production"' };
const modifyEsbuildConfig = (config) => ({ ...config, define: { ...config.define, ...define }, jsx: "automatic" });
// size-limit always adds package.json peerDependencies to the externals; this check wants
// react-query and zustand inside the bundle, so it sets the externals itself.
const bundleAllButReact = (config) => ({ ...modifyEsbuildConfig(config), external: ["react", "react-dom"] });

module.exports = [
  {
    name: "meterkit/react: MeterProvider + useUsage + BalanceBadge (own code)",
    path: "src/react/index.ts",
    import: "{ MeterProvider, useUsage, BalanceBadge }",
    ignore: peers,
    gzip: true,
    limit: "2.5 kB",
    modifyEsbuildConfig,
  },
  {
    name: "meterkit/react: whole kit (own code)",
    path: "src/react/index.ts",
    import: "*",
    ignore: peers,
    gzip: true,
    limit: "6 kB",
    modifyEsbuildConfig,
  },
  {
    name: "meterkit/react: MeterProvider + BalanceBadge, react-query and zustand bundled",
    path: "src/react/index.ts",
    import: "{ MeterProvider, BalanceBadge }",
    ignore: ["react", "react-dom"],
    gzip: true,
    limit: "12.5 kB",
    modifyEsbuildConfig: bundleAllButReact,
  },
];
