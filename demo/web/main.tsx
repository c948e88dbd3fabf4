import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { MeterProvider } from "../../src/react/index.js";
import "../../src/react/styles.css";
import { App } from "./App.js";
import "./app.css";

// One QueryClient for the kit and the page: the kit's queries live under ["meterkit", …].
const queryClient = new QueryClient({ defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: false } } });

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      {/* The meter routes are mounted at /api/meter; the live balance comes over SSE. */}
      <MeterProvider baseUrl="/api/meter" live="sse">
        <App />
      </MeterProvider>
    </QueryClientProvider>
  </StrictMode>,
);
