/**
 * The message protocol between {@link WorkerPool} (main thread) and a worker entry module.
 *
 * A worker entry calls {@link serveWorker} with a setup function; setup receives the pool's `init`
 * value (e.g. which model to load), runs once, and returns the task handler. The worker then
 * announces "ready" (or "fatal" when setup failed) and handles one task at a time.
 */
import { parentPort, workerData, isMainThread } from "worker_threads";

/** What a task handler returns: the result and the buffers to transfer (not copy) back. */
export interface TaskOutput<O> {
  result: O;
  transfer?: ArrayBuffer[];
}

export type TaskHandler<I, O> = (task: I, id: number) => Promise<TaskOutput<O>> | TaskOutput<O>;

/** Messages main -> worker. */
export type ToWorker<I> = { type: "task"; id: number; task: I } | { type: "stop" };

/** Messages worker -> main. */
export type FromWorker<O> =
  | { type: "ready"; info?: unknown }
  | { type: "fatal"; message: string; stack?: string }
  | { type: "result"; id: number; result: O; ms: number }
  | { type: "error"; id: number; message: string; stack?: string };

/** What the pool tells each worker (workerData.boot). */
export interface WorkerBoot {
  /** Absolute path of the entry module. */
  entry: string;
  /** Index of this worker in its pool. */
  index: number;
  /** The pool's `init` value, handed to setup. */
  init: unknown;
}

/**
 * Run in a worker entry module: set up once, then serve tasks sequentially.
 * `setup` may return `{ handler, info }` to report something (backend, load time) with "ready".
 */
export function serveWorker<Init, I, O>(
  setup: (init: Init, index: number) => Promise<TaskHandler<I, O> | { handler: TaskHandler<I, O>; info: unknown }>,
): void {
  if (isMainThread || !parentPort) throw new Error("serveWorker() must run inside a worker thread");
  const port = parentPort;
  const boot = (workerData as { boot: WorkerBoot }).boot;
  let handler: TaskHandler<I, O> | null = null;
  let chain: Promise<void> = Promise.resolve();

  port.on("message", (msg: ToWorker<I>) => {
    if (msg.type === "stop") {
      port.close();
      return;
    }
    if (msg.type !== "task") return;
    // Tasks run one after another even if the pool sends ahead.
    chain = chain.then(async () => {
      const t0 = Date.now();
      try {
        if (!handler) throw new Error("worker received a task before setup finished");
        const out = await handler(msg.task, msg.id);
        port.postMessage({ type: "result", id: msg.id, result: out.result, ms: Date.now() - t0 } satisfies FromWorker<O>, out.transfer ?? []);
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        port.postMessage({ type: "error", id: msg.id, message: err.message, stack: err.stack } satisfies FromWorker<O>);
      }
    });
  });

  (async () => {
    try {
      const s = await setup(boot.init as Init, boot.index);
      let info: unknown;
      if (typeof s === "function") handler = s;
      else {
        handler = s.handler;
        info = s.info;
      }
      port.postMessage({ type: "ready", info } satisfies FromWorker<O>);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      port.postMessage({ type: "fatal", message: err.message, stack: err.stack } satisfies FromWorker<O>);
    }
  })();
}
