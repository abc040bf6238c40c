/**
 * The Python objects a torch.save state dict is made of, modelled in TypeScript, and the pickle
 * allow-list that builds them.
 *
 * A tensor is pickled as `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
 * requires_grad, backward_hooks[, metadata])` (nn.Parameter wraps that in `_rebuild_parameter`),
 * where `storage` is a persistent id resolved by the format-specific loader:
 *   zip format:    ('storage', torch.FloatStorage, '<key>', 'cpu', numel)
 *   legacy format: ('storage', torch.FloatStorage, '<key>', 'cpu', numel, view_metadata)
 */
import { DType } from "./dtype";
import { PyCallable } from "./pickle";
import type { StorageSource } from "./state-dict";

/** A storage class such as `torch.FloatStorage` (only used as a value inside persistent ids). */
export class StorageType {
  constructor(
    readonly qualname: string,
    readonly dtype: DType,
  ) {}
}

/** A storage resolved by the loader: its dtype and where its bytes are. */
export class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: DType,
    readonly numel: number,
    readonly source: StorageSource,
    /** Elements to skip at the start of `source` (legacy storage views). */
    readonly elementOffset = 0,
  ) {}
}

/** The arguments of a `_rebuild_tensor_v2` call. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: "float32",
  HalfStorage: "float16",
  BFloat16Storage: "bfloat16",
  DoubleStorage: "float64",
  LongStorage: "int64",
  IntStorage: "int32",
  ShortStorage: "int16",
  CharStorage: "int8",
  ByteStorage: "uint8",
  BoolStorage: "bool",
};

function intList(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || v.some((d) => typeof d !== "number" || !Number.isInteger(d))) {
    throw new Error(`${what} is not a tuple of ints`);
  }
  return v as number[];
}

function rebuildTensor(args: unknown[]): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) throw new Error("the first argument is not a storage");
  if (typeof offset !== "number") throw new Error("the storage offset is not an int");
  return new TensorRef(storage, offset, intList(size, "size"), intList(stride, "stride"));
}

function firstTensor(args: unknown[]): TensorRef {
  if (!(args[0] instanceof TensorRef)) throw new Error("the first argument is not a tensor");
  return args[0];
}

/** The allow-list: every global a torch state-dict pickle may name, and what it stands for. */
export function torchGlobals(): Map<string, unknown> {
  const g = new Map<string, unknown>();
  g.set(
    "collections.OrderedDict",
    new PyCallable("collections.OrderedDict", (args) => {
      const d = new Map<unknown, unknown>();
      if (Array.isArray(args[0])) for (const kv of args[0]) if (Array.isArray(kv) && kv.length === 2) d.set(kv[0], kv[1]);
      return d;
    }),
  );
  g.set("torch._utils._rebuild_tensor_v2", new PyCallable("torch._utils._rebuild_tensor_v2", rebuildTensor));
  g.set("torch._utils._rebuild_tensor", new PyCallable("torch._utils._rebuild_tensor", rebuildTensor));
  g.set("torch._utils._rebuild_parameter", new PyCallable("torch._utils._rebuild_parameter", firstTensor));
  g.set("torch._utils._rebuild_parameter_with_state", new PyCallable("torch._utils._rebuild_parameter_with_state", firstTensor));
  g.set("torch.Size", new PyCallable("torch.Size", (args) => intList(args[0] ?? [], "torch.Size argument")));
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) g.set(`torch.${name}`, new StorageType(`torch.${name}`, dtype));
  return g;
}
