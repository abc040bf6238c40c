/**
 * Worker-thread entry for parallel training (./parallel): holds one Replica and serves
 * "grads" (gradient of a shard of a step's batch), "apply" (averaged gradients -> AdamW + EMA),
 * "restore" and "checkpoint" requests.
 */
import { selectBackend } from "../model/backend";
import { serveWorker } from "../features/workers/protocol";
import { readCheckpointInfo } from "./checkpoint-state";
import { DataSpec, makeTrainData } from "./data-spec";
import { Replica } from "./replica";
import type { TrainConfig } from "./trainer";

export interface ReplicaInit {
  dir: string;
  config: TrainConfig;
  data: DataSpec;
  backend: string;
}

export type ReplicaTask =
  | { op: "grads"; step: number; from: number; to: number }
  | { op: "apply"; flat: Float32Array }
  | { op: "restore" }
  | { op: "checkpoint"; step: number; extra: unknown };

export type ReplicaResult = { loss?: number; count?: number; flat?: Float32Array; step?: number };

serveWorker<ReplicaInit, ReplicaTask, ReplicaResult>(async (init) => {
  await selectBackend(init.backend);
  const replica = await Replica.create(init.dir, init.config, makeTrainData(init.data), false);
  return {
    info: { backend: init.backend },
    handler: async (task) => {
      switch (task.op) {
        case "grads": {
          const g = replica.shardGrads(task.step, task.from, task.to);
          return { result: g, transfer: [g.flat.buffer as ArrayBuffer] };
        }
        case "apply":
          replica.apply(task.flat);
          return { result: {} };
        case "restore": {
          const info = readCheckpointInfo(init.dir);
          if (!info) throw new Error(`${init.dir}: no checkpoint to restore`);
          await replica.restore(info);
          return { result: { step: info.step } };
        }
        case "checkpoint":
          await replica.checkpoint(task.step, task.extra);
          return { result: {} };
      }
    },
  };
});
