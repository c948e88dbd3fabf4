import type { QueryClient } from "@tanstack/react-query";
import type { Usage } from "../core/types.js";
import { usageKey } from "./queryKeys.js";

/**
 * Keeps whichever Usage is newer. A poll that started before a stream event can land after it,
 * and a reconnecting stream replays the current state: `version` orders them.
 */
export function newerUsage(cached: Usage | undefined, next: Usage): Usage {
  return cached && cached.version > next.version ? cached : next;
}

export function writeUsage(client: QueryClient, baseUrl: string, usage: Usage): void {
  client.setQueryData<Usage>(usageKey(baseUrl), (cached) => newerUsage(cached, usage));
}
