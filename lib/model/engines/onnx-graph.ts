/**
 * A small ONNX graph builder: nodes, inputs, outputs, inline constants, and weights written as ONNX
 * external data to one file beside the model (a single protobuf is limited to 2 GB; the official 256x256
 * checkpoint is 2.2 GB). Weights are appended to the data file as they are added, so building never holds
 * more than one tensor in memory. Each weight starts on a 4 KiB boundary, so ONNX Runtime can map it.
 */
import * as fs from "fs";
import { AttrType, DataType, IR_VERSION, onnxType, OPSET } from "./onnx-proto";

export type AttrValue = number | string | number[] | { floats: number[] } | { float: number };
/** A dimension: a fixed size or a symbolic name ("N"). */
export type Dim = number | string;

const ALIGN = 4096;

export class OnnxGraph {
  private readonly nodes: object[] = [];
  private readonly initializers: object[] = [];
  private readonly inputs: object[] = [];
  private readonly outputs: object[] = [];
  private readonly names = new Set<string>();
  private readonly constants = new Map<string, string>();
  private counter = 0;
  private dataOffset = 0;
  private readonly fd: number;
  /** Bytes of weights written to the data file. */
  weightBytes = 0;

  /** `dataFile`: path of the external-data file to create; `dataName`: how the model refers to it (relative). */
  constructor(private readonly dataFile: string, private readonly dataName: string) {
    this.fd = fs.openSync(dataFile, "w");
  }

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    let name = `${prefix}:${this.counter++}`;
    while (this.names.has(name)) name = `${prefix}:${this.counter++}`;
    this.names.add(name);
    return name;
  }

  input(name: string, dims: Dim[], elemType: number = DataType.FLOAT): string {
    this.names.add(name);
    this.inputs.push(valueInfo(name, dims, elemType));
    return name;
  }

  /** A graph output; `dims` null leaves its shape (rank included) to the runtime. */
  output(name: string, dims: Dim[] | null, elemType: number = DataType.FLOAT): void {
    this.outputs.push(valueInfo(name, dims, elemType));
  }

  /** A float32 weight, appended to the external data file. */
  weight(name: string, dims: number[], data: Float32Array): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`weight ${name}: ${data.length} values for shape [${dims.join(", ")}]`);
    if (this.names.has(name)) throw new Error(`weight ${name} added twice`);
    this.names.add(name);
    const pad = (ALIGN - (this.dataOffset % ALIGN)) % ALIGN;
    if (pad) {
      fs.writeSync(this.fd, Buffer.alloc(pad));
      this.dataOffset += pad;
    }
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let written = 0;
    while (written < bytes.length) written += fs.writeSync(this.fd, bytes, written, bytes.length - written);
    this.initializers.push({
      name,
      dims,
      dataType: DataType.FLOAT,
      dataLocation: 1, // EXTERNAL
      externalData: [
        { key: "location", value: this.dataName },
        { key: "offset", value: String(this.dataOffset) },
        { key: "length", value: String(bytes.length) },
      ],
    });
    this.dataOffset += bytes.length;
    this.weightBytes += bytes.length;
    return name;
  }

  /** An inline constant (small: shapes, scalars), shared between uses with the same value. */
  constFloat(values: number[], dims: number[] = [values.length]): string {
    return this.constant("f", dims, DataType.FLOAT, Buffer.from(new Float32Array(values).buffer), values);
  }

  constInt64(values: number[], dims: number[] = [values.length]): string {
    return this.constant("i", dims, DataType.INT64, Buffer.from(new BigInt64Array(values.map((v) => BigInt(v))).buffer), values);
  }

  private constant(kind: string, dims: number[], dataType: number, raw: Buffer, values: number[]): string {
    const key = `${kind}|${dims.join(",")}|${values.join(",")}`;
    const hit = this.constants.get(key);
    if (hit) return hit;
    const name = this.fresh(`const_${kind}`);
    this.initializers.push({ name, dims, dataType, rawData: raw });
    this.constants.set(key, name);
    return name;
  }

  /** Add a node; returns its output names (fresh unless given). */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs: string[] | number = 1, label = opType): string[] {
    const outs = typeof outputs === "number" ? Array.from({ length: outputs }, () => this.fresh(label)) : outputs;
    for (const o of outs) this.names.add(o);
    this.nodes.push({ opType, input: inputs, output: outs, name: this.fresh(`node_${label}`), attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) });
    return outs;
  }

  /** One-output node. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, label = opType): string {
    return this.node(opType, inputs, attrs, 1, label)[0];
  }

  /** Close the data file and encode the model (protobuf bytes). */
  finish(meta: Record<string, string> = {}, doc = ""): Uint8Array {
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    const Model = onnxType("ModelProto");
    const model = {
      irVersion: IR_VERSION,
      producerName: "diffprobe",
      producerVersion: "1",
      docString: doc,
      opsetImport: [{ domain: "", version: OPSET }],
      metadataProps: Object.entries(meta).map(([key, value]) => ({ key, value })),
      graph: { name: "graph", node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs },
    };
    const err = Model.verify(model);
    if (err) throw new Error(`ONNX model does not verify: ${err}`);
    return Model.encode(Model.fromObject(model)).finish();
  }

  /** Close the data file without encoding (on error). */
  abort(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }
}

function valueInfo(name: string, dims: Dim[] | null, elemType: number): object {
  if (dims === null) return { name, type: { tensorType: { elemType } } };
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } },
  };
}

function attribute(name: string, v: AttrValue): object {
  if (typeof v === "number") {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: ${v} is not an integer (use { float: x })`);
    return { name, type: AttrType.INT, i: v };
  }
  if (typeof v === "string") return { name, type: AttrType.STRING, s: Buffer.from(v, "utf8") };
  if (Array.isArray(v)) return { name, type: AttrType.INTS, ints: v };
  if ("float" in v) return { name, type: AttrType.FLOAT, f: v.float };
  return { name, type: AttrType.FLOATS, floats: v.floats };
}
