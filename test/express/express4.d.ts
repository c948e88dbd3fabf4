// Express 4 is installed under the alias `express4`; its API is a subset of 5's for what the tests use.
declare module "express4" {
  import express from "express";
  export default express;
}
