import "@testing-library/jest-dom/vitest";
import { cleanup } from "@testing-library/react";
import { afterEach } from "vitest";
import { useLimitReached } from "../../src/react/index.js";

afterEach(() => {
  // Only the DOM environment has something to unmount; SSR tests run in node.
  if (typeof document !== "undefined") cleanup();
  useLimitReached.setState({ isOpen: false, info: null });
});
