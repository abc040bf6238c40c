/**
 * Data-parallel training on K worker threads (wasm runs one thread per instance, so K cores need K
 * instances). Each worker holds a full Replica; per step every worker computes the gradient of its
 * shard of the batch (samples [⌊rB/K⌋, ⌊(r+1)B/K⌋)), the main thread averages them (weighted by shard
 * size: the full batch's mean-loss gradient) and sends the average back; every replica applies the
 * same AdamW + EMA update, so all stay identical. Worker 0 writes the checkpoints.
 *
 * Results are deterministic for a given K, and differ from the single-thread run only by float32
 * summation order.
 */
import * as path from "path";
import { WorkerPool } from "../features/workers/pool";
import type { DataSpec } from "./data-spec";
import type { ReplicaInit, ReplicaResult, ReplicaTask } from "./replica-worker";
import type { TrainConfig } from "./trainer";

export class ParallelReplicas {
  private constructor(private readonly pools: WorkerPool<ReplicaTask, ReplicaResult>[], readonly batchSize: number) {}

  /** Start `workers` replicas (the run folder's init.safetensors must exist). */
  static async start(workers: number, dir: string, config: TrainConfig, data: DataSpec, backend: string): Promise<ParallelReplicas> {
    if (!(workers >= 2)) throw new Error(`parallel training needs at least 2 workers, got ${workers}`);
    if (config.batchSize < workers) throw new Error(`batch ${config.batchSize} cannot be split over ${workers} workers`);
    const entry = path.join(__dirname, "replica-worker.ts");
    const init: ReplicaInit = { dir, config, data, backend };
    const pools: WorkerPool<ReplicaTask, ReplicaResult>[] = [];
    try {
      for (let r = 0; r < workers; r++) pools.push(await WorkerPool.start<ReplicaTask, ReplicaResult>({ entry, size: 1, init, name: `train worker ${r}` }));
    } catch (e) {
      await Promise.all(pools.map((p) => p.close()));
      throw e;
    }
    return new ParallelReplicas(pools, config.batchSize);
  }

  get workers(): number {
    return this.pools.length;
  }

  /** One step on all workers; returns the batch loss. */
  async step(step: number): Promise<number> {
    const k = this.pools.length;
    const b = this.batchSize;
    const shards = await Promise.all(this.pools.map((p, r) => p.run({ task: { op: "grads", step, from: Math.floor((r * b) / k), to: Math.floor(((r + 1) * b) / k) }, label: `step ${step + 1} shard ${r}` })));
    const avg = new Float32Array(shards[0].flat!.length);
    let loss = 0;
    for (const s of shards) {
      const wgt = s.count! / b;
      loss += wgt * s.loss!;
      const f = s.flat!;
      for (let i = 0; i < avg.length; i++) avg[i] += wgt * f[i];
    }
    await Promise.all(this.pools.map((p) => p.run({ task: { op: "apply", flat: avg }, label: `step ${step + 1} update` })));
    return loss;
  }

  async restore(): Promise<void> {
    await Promise.all(this.pools.map((p) => p.run({ task: { op: "restore" }, label: "restore" })));
  }

  async checkpoint(step: number, extra: unknown): Promise<void> {
    await this.pools[0].run({ task: { op: "checkpoint", step, extra }, label: `checkpoint ${step}` });
  }

  async close(): Promise<void> {
    await Promise.all(this.pools.map((p) => p.close()));
  }
}
