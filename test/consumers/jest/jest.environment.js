// jsdom has no fetch API (Response, ReadableStream, TextEncoder…); the fake meter is a fetch,
// so this environment lends the test window Node's own, as jest-fixed-jsdom does.
const { TestEnvironment } = require("jest-environment-jsdom");

module.exports = class JsdomWithFetch extends TestEnvironment {
  constructor(...args) {
    super(...args);
    for (const name of ["fetch", "Request", "Response", "Headers", "ReadableStream", "TextEncoder", "TextDecoder", "AbortController", "AbortSignal", "structuredClone"]) {
      this.global[name] = globalThis[name];
    }
  }
};
