/*
 * How every browser test here launches Chromium: Debian's /usr/bin/chromium (or CHROMIUM_PATH),
 * headless, as root (no sandbox), and quiet on a machine with no network.
 */

/** The Chromium binary: `CHROMIUM_PATH`, else Debian's. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Flags for headless Chromium here: no sandbox (root), no GPU, no background network traffic. */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Launch options for playwright-core's `chromium.launch`. */
export function chromiumLaunchOptions(extraArgs: string[] = []): { executablePath: string; headless: true; args: string[] } {
  return { executablePath: CHROMIUM_PATH, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] };
}
