/**
 * Query keys of the kit. Every key starts with `"meterkit"`, so an app can invalidate or inspect
 * all of the kit's cache at once (`queryClient.invalidateQueries({ queryKey: meterKeys.all })`).
 * The base URL is part of each key: two providers pointing at two servers never share data.
 */
export const usageKey = (baseUrl: string) => ["meterkit", "usage", baseUrl] as const;
export const packsKey = (baseUrl: string) => ["meterkit", "packs", baseUrl] as const;
export const historyKey = (baseUrl: string) => ["meterkit", "history", baseUrl] as const;
export const entriesKey = (baseUrl: string) => ["meterkit", "entries", baseUrl] as const;

export const meterKeys = { all: ["meterkit"] as const, usage: usageKey, packs: packsKey, history: historyKey, entries: entriesKey };
