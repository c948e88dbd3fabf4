import "@testing-library/jest-dom/vitest";
import { cleanup } from "@testing-library/react";
import { afterEach } from "vitest";

afterEach(() => {
  // Only the DOM environment has something to unmount; SSR tests run in node. Each provider
  // has its own limit store, so there is no page-wide state to reset.
  if (typeof document !== "undefined") cleanup();
});
