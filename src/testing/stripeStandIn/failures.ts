import type { ServerResponse } from "node:http";
import type { StandInFailure } from "./types.js";

/**
 * The stand-in's failure injection: requests to fail (an error status, no answer at all, or
 * the work done and the answer lost), and the requests left hanging until `clear()`.
 */
export interface FailureInjector {
  add(failure: StandInFailure): void;
  /** The failure the next `method path` request meets (counted down), or undefined. */
  take(method: string, path: string): Required<StandInFailure> | undefined;
  /** Keeps `res` open, unanswered, until `clear()`. */
  hang(res: ServerResponse): void;
  /** Removes every failure and answers hanging requests with a 500 through `answer`. */
  clear(answer: (res: ServerResponse) => void): void;
}

export function createFailureInjector(): FailureInjector {
  const failures: Array<Required<StandInFailure>> = [];
  const hanging = new Set<ServerResponse>();
  return {
    add(f) {
      failures.push({ method: "POST", mode: "error", status: 500, times: 1, ...f });
    },
    take(method, path) {
      const f = failures.find((x) => x.path === path && x.method === method && x.times > 0);
      if (f) f.times -= 1;
      return f;
    },
    hang(res) {
      hanging.add(res);
      res.on("close", () => hanging.delete(res));
    },
    clear(answer) {
      failures.length = 0;
      for (const res of hanging) answer(res);
      hanging.clear();
    },
  };
}

/** Swallows the answer of an `accept-then-timeout` request: the work is done, the reply lost. */
export class ServerResponseSink {
  statusCode = 200;
  headersSent = false;
  writeHead(status: number) {
    this.statusCode = status;
    return this;
  }
  end() {
    return this;
  }
}
