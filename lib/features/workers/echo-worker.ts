/**
 * A diagnostic worker entry: checks that worker threads start and load TypeScript in this
 * environment, and lets tests drive the pool (delays, failures, crashes) without a model.
 *
 * Task: `{ values: Float32Array, delayMs?, fail?, crash? }` -> `{ sum, n, worker, startedAt, endedAt, values }`
 * where `values` is the input doubled (sent back by transfer).
 */
import { threadId } from "worker_threads";
import { serveWorker } from "./protocol";

export interface EchoInit {
  /** Throw during setup (tests the start-up error path). */
  failSetup?: string;
  /** Milliseconds spent in setup (like loading a model). */
  setupMs?: number;
}

export interface EchoTask {
  values: Float32Array;
  delayMs?: number;
  /** Throw this message instead of answering. */
  fail?: string;
  /** Exit the worker thread with this code (simulates a crash). */
  crash?: number;
}

export interface EchoResult {
  sum: number;
  n: number;
  worker: number;
  threadId: number;
  startedAt: number;
  endedAt: number;
  values: Float32Array;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

serveWorker<EchoInit, EchoTask, EchoResult>(async (init, index) => {
  if (init?.setupMs) await sleep(init.setupMs);
  if (init?.failSetup) throw new Error(init.failSetup);
  return {
    info: { index, threadId, typescript: __filename.endsWith(".ts") },
    handler: async (task) => {
      const startedAt = Date.now();
      if (task.delayMs) await sleep(task.delayMs);
      if (task.crash !== undefined) process.exit(task.crash);
      if (task.fail) throw new Error(task.fail);
      let sum = 0;
      const values = new Float32Array(task.values.length);
      for (let i = 0; i < values.length; i++) {
        sum += task.values[i];
        values[i] = 2 * task.values[i];
      }
      return {
        result: { sum, n: values.length, worker: index, threadId, startedAt, endedAt: Date.now(), values },
        transfer: [values.buffer as ArrayBuffer],
      };
    },
  };
});
