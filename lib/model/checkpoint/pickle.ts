/**
 * A restricted Python pickle reader (protocols 2-5 binary opcodes).
 *
 * A pickle is a program for a small stack machine: opcodes push values (ints, strings, tuples,
 * empty dicts/lists), fill containers (SETITEMS, APPENDS), store and fetch them in a memo (BINPUT,
 * BINGET), look up Python callables by module and name (GLOBAL, STACK_GLOBAL), call them (REDUCE,
 * NEWOBJ), and ask the loader for out-of-band objects (BINPERSID, torch's storages). STOP returns
 * the top of the stack.
 *
 * Nothing here executes Python. A global resolves only through the caller's allow-list, to a value
 * modelled in TypeScript (usually a `PyCallable`); any other global or opcode is an error naming it.
 * Python values map to: dict -> Map, list and tuple -> array, str -> string, int -> number (bigint
 * beyond 2^53), float -> number, bool -> boolean, None -> null, bytes -> Uint8Array.
 */

/** A Python callable modelled in TypeScript (what an allow-listed global resolves to). */
export class PyCallable {
  constructor(
    readonly qualname: string,
    readonly fn: (args: unknown[]) => unknown,
  ) {}
}

/** Objects that accept pickle's BUILD (`__setstate__`). Dicts (Maps) ignore BUILD. */
export interface PyBuildable {
  setState(state: unknown): void;
}

export interface UnpickleOptions {
  /** File being read, for error messages. */
  file: string;
  /** Part of the file (e.g. "archive/data.pkl"), for error messages. */
  part?: string;
  /** Allowed globals by "module.name". */
  globals: ReadonlyMap<string, unknown>;
  /** Handler of persistent ids (BINPERSID); absent = persistent ids are an error. */
  persistentLoad?: (pid: unknown) => unknown;
}

/** The pickle ended before STOP (the data is truncated, or more of a stream must be read). */
export class PickleTruncatedError extends Error {}

const OPCODE_NAMES: Record<number, string> = {
  0x28: "MARK", 0x2e: "STOP", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP", 0x46: "FLOAT", 0x49: "INT",
  0x4a: "BININT", 0x4b: "BININT1", 0x4c: "LONG", 0x4d: "BININT2", 0x4e: "NONE", 0x50: "PERSID",
  0x51: "BINPERSID", 0x52: "REDUCE", 0x53: "STRING", 0x54: "BINSTRING", 0x55: "SHORT_BINSTRING",
  0x56: "UNICODE", 0x58: "BINUNICODE", 0x61: "APPEND", 0x62: "BUILD", 0x63: "GLOBAL", 0x64: "DICT",
  0x7d: "EMPTY_DICT", 0x65: "APPENDS", 0x67: "GET", 0x68: "BINGET", 0x69: "INST", 0x6a: "LONG_BINGET",
  0x6c: "LIST", 0x5d: "EMPTY_LIST", 0x6f: "OBJ", 0x70: "PUT", 0x71: "BINPUT", 0x72: "LONG_BINPUT",
  0x73: "SETITEM", 0x74: "TUPLE", 0x29: "EMPTY_TUPLE", 0x75: "SETITEMS", 0x47: "BINFLOAT",
  0x80: "PROTO", 0x81: "NEWOBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x85: "TUPLE1",
  0x86: "TUPLE2", 0x87: "TUPLE3", 0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x8a: "LONG1", 0x8b: "LONG4",
  0x42: "BINBYTES", 0x43: "SHORT_BINBYTES", 0x8c: "SHORT_BINUNICODE", 0x8d: "BINUNICODE8",
  0x8e: "BINBYTES8", 0x8f: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET", 0x92: "NEWOBJ_EX",
  0x93: "STACK_GLOBAL", 0x94: "MEMOIZE", 0x95: "FRAME", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
};

function describe(v: unknown): string {
  if (v === null) return "None";
  if (v instanceof PyCallable || (v && typeof (v as { qualname?: unknown }).qualname === "string")) {
    return `"${(v as { qualname: string }).qualname}"`;
  }
  if (v instanceof Map) return "a dict";
  if (Array.isArray(v)) return "a tuple/list";
  return typeof v === "object" ? (v as object).constructor?.name ?? "an object" : typeof v;
}

/**
 * Run the pickle that starts at byte `start` of `data`. Returns the unpickled value and the
 * offset just past its STOP opcode (pickles can be concatenated, as in legacy torch files).
 */
export function unpickle(data: Uint8Array, options: UnpickleOptions, start = 0): { value: unknown; end: number } {
  const where = options.part ? `${options.file} (${options.part})` : options.file;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const text = new TextDecoder("utf-8");
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = start;
  let opAt = start;

  const fail = (msg: string): never => {
    throw new Error(`${where}: ${msg} (pickle byte ${opAt})`);
  };
  const need = (n: number): number => {
    if (pos + n > data.length) {
      throw new PickleTruncatedError(`${where}: truncated pickle: needs byte ${pos + n} but only ${data.length} are there`);
    }
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = () => data[need(1)];
  const u16 = () => view.getUint16(need(2), true);
  const u32 = () => view.getUint32(need(4), true);
  const u64 = (): number => {
    const v = view.getBigUint64(need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${v} is out of range`);
    return Number(v);
  };
  const bytes = (n: number) => data.subarray(need(n), pos);
  const copyBytes = (n: number) => new Uint8Array(bytes(n)); // a plain, independent Uint8Array
  const utf8 = (n: number) => text.decode(bytes(n));
  const latin1 = (n: number) => Buffer.from(bytes(n)).toString("latin1");
  const line = (): string => {
    const nl = data.indexOf(0x0a, pos);
    if (nl < 0) need(data.length - pos + 1);
    const s = Buffer.from(data.subarray(pos, nl)).toString("latin1");
    pos = nl + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) fail("stack underflow");
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail("stack underflow");
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail("no MARK on the stack");
    return stack.splice(m as number);
  };
  const longLE = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    // (BigInt() rather than 123n literals, which need an ES2020 compile target)
    let v = BigInt(0);
    for (let i = b.length - 1; i >= 0; i--) v = (v << BigInt(8)) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= BigInt(1) << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const global = (module: string, name: string): unknown => {
    const key = `${module}.${name}`;
    if (!options.globals.has(key)) {
      throw new Error(
        `unsupported pickle global "${key}" in ${where} (pickle byte ${opAt}); ` +
          "only tensor/storage constructors and collections.OrderedDict are allowed, nothing else is loaded",
      );
    }
    return options.globals.get(key);
  };
  const setItems = (dict: unknown, items: unknown[]): void => {
    if (!(dict instanceof Map)) fail(`SETITEM(S) on ${describe(dict)}, expected a dict`);
    if (items.length % 2) fail("SETITEMS with an odd number of items");
    for (let i = 0; i < items.length; i += 2) (dict as Map<unknown, unknown>).set(items[i], items[i + 1]);
  };
  const appendItems = (list: unknown, items: unknown[]): void => {
    if (!Array.isArray(list)) fail(`APPEND(S) on ${describe(list)}, expected a list`);
    (list as unknown[]).push(...items);
  };
  const call = (fn: unknown, args: unknown, op: string): unknown => {
    if (!(fn instanceof PyCallable)) return fail(`${op} of ${describe(fn)}, which is not callable here`);
    if (!Array.isArray(args)) return fail(`${op} of "${fn.qualname}" with ${describe(args)} as arguments`);
    try {
      return fn.fn(args);
    } catch (err) {
      return fail(`${fn.qualname}(...) failed: ${(err as Error).message}`);
    }
  };

  for (;;) {
    opAt = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail(`pickle protocol ${data[pos - 1]} is newer than 5`);
        break;
      case 0x95: // FRAME: an 8-byte length hint, ignorable for an in-memory reader
        need(8);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length) fail(`STOP with ${stack.length} values on the stack`);
        return { value: stack[0], end: pos };
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(view.getInt32(need(4), true));
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(longLE(bytes(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(longLE(bytes(u32())));
        break;
      case 0x47: // BINFLOAT (big-endian double)
        stack.push(view.getFloat64(need(8), false));
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8(u64()));
        break;
      case 0x55: // SHORT_BINSTRING (Python 2 str)
        stack.push(latin1(u8()));
        break;
      case 0x54: // BINSTRING
        stack.push(latin1(u32()));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(copyBytes(u8()));
        break;
      case 0x42: // BINBYTES
        stack.push(copyBytes(u32()));
        break;
      case 0x8e: // BINBYTES8
        stack.push(copyBytes(u64()));
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x74: // TUPLE
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x64: {
        // DICT
        const d = new Map();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) fail(`memo entry ${i} is not defined`);
        stack.push(memo.get(i));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") fail("STACK_GLOBAL needs two strings");
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE: callable(*args)
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args, "REDUCE"));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args, "NEWOBJ"));
        break;
      }
      case 0x62: {
        // BUILD: obj.__setstate__(state)
        const state = pop();
        const obj = top();
        if (obj instanceof Map) break; // e.g. the OrderedDict's `_metadata` attribute: not needed
        if (obj && typeof (obj as PyBuildable).setState === "function") (obj as PyBuildable).setState(state);
        else fail(`BUILD on ${describe(obj)} is not supported`);
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) fail("persistent id (BINPERSID) found but this file type has none");
        stack.push(options.persistentLoad!(pid));
        break;
      }
      default: {
        const name = OPCODE_NAMES[op];
        throw new Error(
          `unsupported pickle opcode ${name ?? "unknown"} (0x${op.toString(16).padStart(2, "0")}) in ${where} (pickle byte ${opAt})`,
        );
      }
    }
  }
}
