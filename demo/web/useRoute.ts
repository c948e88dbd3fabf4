import { useCallback, useEffect, useState } from "react";

export type Route = "chat" | "usage";

const PATHS: Record<Route, string> = { chat: "/", usage: "/usage" };

function current(): Route {
  return window.location.pathname.replace(/\/+$/, "") === "/usage" ? "usage" : "chat";
}

/** The page's two views as real URLs (`/` and `/usage`), with the back button working. */
export function useRoute(): [Route, (route: Route) => void] {
  const [route, setRoute] = useState<Route>(current);
  useEffect(() => {
    const onPop = () => setRoute(current());
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  const go = useCallback((next: Route) => {
    if (next !== current()) {
      window.history.pushState(null, "", PATHS[next]);
      window.scrollTo(0, 0);
    }
    setRoute(next);
  }, []);
  return [route, go];
}

export function hrefOf(route: Route): string {
  return PATHS[route];
}
