/**
 * A small pool of worker threads running one entry module each (see ./protocol for the worker side).
 *
 * - Workers load TypeScript entries through tsx (registered inside the worker), so the same pool works
 *   from tsx scripts, mocha and a tslab kernel; compiled `.js` entries load directly.
 * - {@link WorkerPool.map} streams tasks from an (async) iterable with backpressure: at most `window`
 *   tasks are taken from the source and not yet handed back, and results come out in source order.
 * - A task that fails rejects with a {@link TaskError} naming the task (its label) and the worker; the
 *   results before it have been yielded, and `onResult` has seen every task that finished.
 * - Idle workers do not keep the process alive (unref), busy ones do; {@link WorkerPool.close}
 *   terminates them.
 */
import * as os from "os";
import * as path from "path";
import * as fs from "fs";
import { Worker, ResourceLimits } from "worker_threads";
import type { FromWorker, ToWorker, WorkerBoot } from "./protocol";

export interface WorkerPoolOptions {
  /** Absolute path of the worker entry module (.ts via tsx, or .js). */
  entry: string;
  /** Handed to every worker's setup (structured-cloned). */
  init?: unknown;
  /** Number of workers (default: os.availableParallelism()). */
  size?: number;
  /** Name used in messages ("feature worker"). */
  name?: string;
  resourceLimits?: ResourceLimits;
  /** Called when a worker is ready, with what its setup reported. */
  onReady?: (index: number, info: unknown) => void;
}

/** One unit of work for {@link WorkerPool.run} / {@link WorkerPool.map}. */
export interface Job<I> {
  task: I;
  /** Buffers moved (not copied) to the worker. */
  transfer?: ArrayBuffer[];
  /** Names the task in errors ("batch 3 (images 48-63)"). */
  label?: string;
}

/** A task failed (in the worker, or because its worker died). */
export class TaskError extends Error {
  constructor(
    message: string,
    /** The task's label. */
    readonly label: string,
    /** Index of the worker, -1 when none ran it. */
    readonly worker: number,
    /** The worker-side stack, when there is one. */
    readonly workerStack?: string,
  ) {
    super(message);
    this.name = "TaskError";
  }
}

interface Queued<I, O> {
  job: Job<I>;
  label: string;
  resolve(o: O): void;
  reject(e: Error): void;
}

interface Slot<I, O> {
  index: number;
  worker: Worker;
  current: Queued<I, O> | null;
  ready: boolean;
  alive: boolean;
}

/** The number of workers used by default: one per core. */
export function defaultWorkerCount(): number {
  return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
}

/**
 * The JS that boots a worker: for .ts entries register tsx (CommonJS hook for require, ESM hook for
 * dynamic import()), then load the entry.
 */
function bootstrapSource(): string {
  return [
    `const { workerData } = require("worker_threads");`,
    `if (workerData.tsx) {`,
    `  require(workerData.tsx.cjs).register();`,
    `  if (workerData.tsx.esm) require(workerData.tsx.esm).register();`,
    `}`,
    `require(workerData.boot.entry);`,
  ].join("\n");
}

/** Resolve tsx's register APIs (CommonJS, and ESM where available), from this package or the entry's folder. */
function resolveTsx(entry: string): { cjs: string; esm: string | null } {
  for (const from of [__dirname, path.dirname(entry), process.cwd()]) {
    try {
      const cjs = require.resolve("tsx/cjs/api", { paths: [from] });
      let esm: string | null = null;
      try {
        esm = require.resolve("tsx/esm/api", { paths: [from] });
      } catch {
        /* older tsx: require() only */
      }
      return { cjs, esm };
    } catch {
      /* try the next place */
    }
  }
  throw new Error(`worker entry ${entry} is TypeScript but tsx (tsx/cjs/api) cannot be resolved; install tsx or use a compiled .js entry`);
}

export class WorkerPool<I, O> {
  private readonly slots: Slot<I, O>[] = [];
  private readonly queue: Queued<I, O>[] = [];
  private closed = false;
  private broken: Error | null = null;
  /** What each worker's setup reported. */
  readonly infos: unknown[] = [];
  readonly name: string;

  private constructor(name: string) {
    this.name = name;
  }

  /** Start the workers and wait until every one has finished its setup (e.g. loaded a model). */
  static async start<I, O>(opts: WorkerPoolOptions): Promise<WorkerPool<I, O>> {
    const size = opts.size ?? defaultWorkerCount();
    if (!(Number.isInteger(size) && size >= 1)) throw new Error(`worker pool size must be a positive integer, got ${size}`);
    const entry = path.resolve(opts.entry);
    if (!fs.existsSync(entry)) throw new Error(`worker entry ${entry} does not exist`);
    const tsx = /\.[cm]?ts$/.test(entry) ? resolveTsx(entry) : null;
    const pool = new WorkerPool<I, O>(opts.name ?? path.basename(entry).replace(/\.[^.]+$/, ""));

    const readies: Promise<void>[] = [];
    for (let index = 0; index < size; index++) {
      const boot: WorkerBoot = { entry, index, init: opts.init };
      const worker = new Worker(bootstrapSource(), {
        eval: true,
        workerData: { boot, tsx },
        resourceLimits: opts.resourceLimits,
        // The parent's node flags (e.g. tsx's loaders), minus inspector flags whose port would clash.
        execArgv: process.execArgv.filter((a) => !/^--(inspect|debug)/.test(a)),
      });
      const slot: Slot<I, O> = { index, worker, current: null, ready: false, alive: true };
      pool.slots.push(slot);
      readies.push(
        new Promise<void>((resolve, reject) => {
          let started = false;
          worker.on("message", (msg: FromWorker<O>) => {
            if (msg.type === "ready") {
              started = true;
              slot.ready = true;
              pool.infos[index] = msg.info;
              opts.onReady?.(index, msg.info);
              worker.unref();
              resolve();
              pool.pump();
            } else if (msg.type === "fatal") {
              const e = new Error(`${pool.name} ${index} failed to start: ${msg.message}`);
              if (msg.stack) e.stack = `${e.message}\n--- worker stack ---\n${msg.stack}`;
              reject(e);
            } else pool.onMessage(slot, msg);
          });
          worker.on("error", (err) => {
            if (!started) reject(new Error(`${pool.name} ${index} failed to start: ${err.message}`));
            pool.onDeath(slot, `crashed: ${err.message}`);
          });
          worker.on("exit", (code) => {
            if (!started) reject(new Error(`${pool.name} ${index} exited with code ${code} during setup`));
            pool.onDeath(slot, `exited with code ${code}`);
          });
        }),
      );
    }
    try {
      await Promise.all(readies);
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  /** Number of live workers. */
  get size(): number {
    return this.slots.filter((s) => s.alive).length;
  }

  /** Run one task on the next free worker. */
  run(job: Job<I>): Promise<O> {
    return this.enqueue(job, job.label ?? "task").promise;
  }

  /** Queue a job; `cancel` withdraws it if no worker has taken it yet. */
  private enqueue(job: Job<I>, label: string): { promise: Promise<O>; cancel(): void } {
    let q: Queued<I, O> | null = null;
    let rejectEarly: ((e: Error) => void) | null = null;
    const promise = new Promise<O>((resolve, reject) => {
      if (this.closed) return reject(new Error(`${label} not run: ${this.name} pool is closed`));
      if (this.broken) return reject(this.broken);
      q = { job, label, resolve, reject };
      rejectEarly = reject;
      this.queue.push(q);
      this.pump();
    });
    const cancel = () => {
      const at = q ? this.queue.indexOf(q) : -1;
      if (q && at >= 0) {
        this.queue.splice(at, 1);
        rejectEarly!(new Error(`${label} cancelled`));
      }
    };
    return { promise, cancel };
  }

  /**
   * Run a stream of jobs; results come back in source order. At most `window` jobs (default two per
   * worker) are taken from the source and not yet yielded, so memory stays bounded however long the
   * source is. `onResult` sees each result as soon as it arrives (any order), which lets a caller keep
   * (cache) everything finished even when a later job, or the consumer, stops the stream.
   */
  async *map(
    source: Iterable<Job<I>> | AsyncIterable<Job<I>>,
    opts: { window?: number; onResult?: (result: O, index: number, label: string) => void } = {},
  ): AsyncGenerator<O, void, undefined> {
    const window = Math.max(1, opts.window ?? 2 * Math.max(1, this.size));
    const it: Iterator<Job<I>> | AsyncIterator<Job<I>> =
      Symbol.asyncIterator in source ? (source as AsyncIterable<Job<I>>)[Symbol.asyncIterator]() : (source as Iterable<Job<I>>)[Symbol.iterator]();
    // (Not a discriminated union: tslab compiles without strictNullChecks, where those do not narrow.)
    type Settled = { error: Error | null; value?: O };
    const pending: { done: Promise<Settled>; cancel(): void }[] = [];
    let index = 0;
    let exhausted = false;
    try {
      for (;;) {
        while (!exhausted && pending.length < window) {
          const next = await it.next();
          if (next.done) {
            exhausted = true;
            break;
          }
          const i = index++;
          const job = next.value;
          const label = job.label ?? `task ${i}`;
          const { promise, cancel } = this.enqueue(job, label);
          const done = promise.then(
            (value): Settled => {
              opts.onResult?.(value, i, label);
              return { error: null, value };
            },
            (error: Error): Settled => ({ error }),
          );
          pending.push({ done, cancel });
        }
        const head = pending.shift();
        if (!head) break;
        const settled = await head.done;
        if (settled.error) throw settled.error;
        yield settled.value as O;
      }
    } finally {
      // Stopped early (error or consumer break): drop what has not started, let running tasks finish
      // so that onResult still sees them, and close the source.
      for (const p of pending) p.cancel();
      await Promise.all(pending.map((p) => p.done));
      if (!exhausted && typeof it.return === "function") await it.return();
    }
  }

  /** Terminate every worker. Pending tasks reject. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new Error(`${this.name} pool was closed`);
    for (const q of this.queue.splice(0)) q.reject(new TaskError(`${q.label} not run: ${err.message}`, q.label, -1));
    await Promise.all(
      this.slots.map(async (s) => {
        s.alive = false;
        const cur = s.current;
        s.current = null;
        if (cur) cur.reject(new TaskError(`${cur.label} interrupted: ${err.message}`, cur.label, s.index));
        await s.worker.terminate();
      }),
    );
  }

  /** Hand queued tasks to idle workers. */
  private pump(): void {
    for (const slot of this.slots) {
      if (!slot.alive || !slot.ready || slot.current) continue;
      const q = this.queue.shift();
      if (!q) break;
      slot.current = q;
      slot.worker.ref(); // busy: keep the process alive until the result is back
      try {
        slot.worker.postMessage({ type: "task", id: 0, task: q.job.task } satisfies ToWorker<I>, q.job.transfer ?? []);
      } catch (e) {
        slot.current = null;
        slot.worker.unref();
        q.reject(new TaskError(`${q.label} could not be sent to ${this.name} ${slot.index}: ${(e as Error).message}`, q.label, slot.index));
      }
    }
  }

  private onMessage(slot: Slot<I, O>, msg: FromWorker<O>): void {
    if (msg.type !== "result" && msg.type !== "error") return;
    const q = slot.current;
    slot.current = null;
    slot.worker.unref();
    if (q) {
      if (msg.type === "result") q.resolve(msg.result);
      else q.reject(new TaskError(`${q.label} failed in ${this.name} ${slot.index}: ${msg.message}`, q.label, slot.index, msg.stack));
    }
    this.pump();
  }

  private onDeath(slot: Slot<I, O>, why: string): void {
    if (!slot.alive) return;
    slot.alive = false;
    const q = slot.current;
    slot.current = null;
    if (q) q.reject(new TaskError(`${q.label} lost: ${this.name} ${slot.index} ${why}`, q.label, slot.index));
    if (this.closed) return;
    if (this.size === 0) {
      this.broken = new Error(`every ${this.name} has stopped (last: ${this.name} ${slot.index} ${why})`);
      for (const r of this.queue.splice(0)) r.reject(new TaskError(`${r.label} not run: ${this.broken.message}`, r.label, -1));
    } else this.pump();
  }
}
