/**
 * The command line shared by the data-scripts: parse options with node's util.parseArgs, answer
 * --help, turn a wrong command line into its message plus the usage (exit status 2), and any other
 * error into one line naming the command (exit status 1, or what the command says).
 *
 *   const cmd: Command = { name: "model-card", usage: USAGE };
 *   runCommand(cmd, async () => {
 *     const { values, positionals } = parseCommandLine({ options: { seed: { type: "string" } }, positionals: [1, 1] });
 *     const seed = numberOption(values, "seed", { integer: true, min: 0 }) ?? 0;
 *     ...
 *     return 0;
 *   });
 */
import * as fs from "fs";
import { parseArgs } from "util";

/** A wrong command line: its message is printed with the usage; exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** --help or -h: the usage is printed on stdout; exit status 0. */
export class HelpRequested extends Error {
  constructor() {
    super("help requested");
    this.name = "HelpRequested";
  }
}

export interface Command {
  /** Named in error messages ("check-preprocess: ..."). */
  name: string;
  /** Printed for --help and after a usage error. */
  usage: string | (() => string);
  /** Exit status of an error that is not a usage error (default 1). */
  errorStatus?: number;
}

type OptionSpecs = Record<string, { type: "string" | "boolean"; short?: string; default?: string | boolean; multiple?: false }>;
type Values<O extends OptionSpecs> = { [K in keyof O]: O[K]["type"] extends "boolean" ? boolean | undefined : string | undefined };

export interface CommandLineSpec<O extends OptionSpecs> {
  options: O;
  /** Allowed number of positional arguments [min, max] (default [0, 0]; max may be Infinity). */
  positionals?: [number, number];
  /** The arguments (default process.argv.slice(2)). */
  args?: string[];
}

/**
 * Parse a command line. Throws HelpRequested for --help / -h, UsageError for an unknown option, an
 * option without its value, or a wrong number of positional arguments.
 */
export function parseCommandLine<O extends OptionSpecs>(spec: CommandLineSpec<O>): { values: Values<O>; positionals: string[] } {
  const args = spec.args ?? process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) throw new HelpRequested();
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options: spec.options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const [min, max] = spec.positionals ?? [0, 0];
  const n = parsed.positionals.length;
  if (n < min || n > max) {
    const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
    throw new UsageError(`expected ${want} argument${want === "1" ? "" : "s"}, got ${n}${n ? `: ${parsed.positionals.map((p) => JSON.stringify(p)).join(" ")}` : ""}`);
  }
  return { values: parsed.values as Values<O>, positionals: parsed.positionals };
}

/** A numeric option: undefined when absent; a UsageError naming the option when it is not a number in range. */
export function numberOption(
  values: Record<string, unknown>,
  name: string,
  rule: { integer?: boolean; min?: number; max?: number; positive?: boolean } = {},
): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const v = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
  const wanted = [
    rule.integer ? "an integer" : "a number",
    rule.positive ? "> 0" : "",
    rule.min !== undefined ? `>= ${rule.min}` : "",
    rule.max !== undefined ? `<= ${rule.max}` : "",
  ].filter(Boolean).join(" ");
  const ok = Number.isFinite(v) && (!rule.integer || Number.isInteger(v)) && (!rule.positive || v > 0) &&
    (rule.min === undefined || v >= rule.min) && (rule.max === undefined || v <= rule.max);
  if (!ok) throw new UsageError(`--${name} must be ${wanted}, got ${JSON.stringify(raw)}`);
  return v;
}

/** One of a fixed set of values, or a UsageError listing them. */
export function choiceOption<T extends string>(values: Record<string, unknown>, name: string, choices: readonly T[]): T | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  if (!choices.includes(raw as T)) throw new UsageError(`--${name} must be one of ${choices.join(", ")}, got ${JSON.stringify(raw)}`);
  return raw as T;
}

/** The text of a file's leading /** ... *\/ comment (scripts whose usage is their header). */
export function headerComment(file: string): string {
  const m = fs.readFileSync(file, "utf8").match(/\/\*\*([\s\S]*?)\*\//);
  if (!m) throw new Error(`${file} has no leading /** */ comment`);
  return m[1].replace(/^[ \t]*\* ?/gm, "").trim();
}

export interface CommandIO {
  out: (line: string) => void;
  err: (line: string) => void;
}

const CONSOLE: CommandIO = { out: (l) => console.log(l), err: (l) => console.error(l) };

/** Run a command's body and return its exit status, printing help, usage errors and failures. */
export async function commandStatus(cmd: Command, body: () => number | void | Promise<number | void>, io: CommandIO = CONSOLE): Promise<number> {
  const usage = () => (typeof cmd.usage === "function" ? cmd.usage() : cmd.usage);
  try {
    return (await body()) ?? 0;
  } catch (e) {
    if (e instanceof HelpRequested) {
      io.out(usage());
      return 0;
    }
    if (e instanceof UsageError) {
      io.err(`${cmd.name}: ${e.message}\n\n${usage()}`);
      return 2;
    }
    io.err(`${cmd.name}: ${e instanceof Error ? e.message : String(e)}`);
    if (process.env.DIFFPROBE_DEBUG && e instanceof Error && e.stack) io.err(e.stack);
    return cmd.errorStatus ?? 1;
  }
}

/**
 * The entry point of a script: run the body, set the exit status. `exit: true` ends the process at
 * once (for scripts whose tfjs backend or worker threads would keep it alive).
 */
export function runCommand(cmd: Command, body: () => number | void | Promise<number | void>, opts: { exit?: boolean } = {}): void {
  void commandStatus(cmd, body).then((code) => {
    if (opts.exit) process.exit(code);
    process.exitCode = code;
  });
}
