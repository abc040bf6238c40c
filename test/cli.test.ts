import * as assert from "assert";
import { spawnSync } from "child_process";
import * as path from "path";
import {
  choiceOption, commandStatus, headerComment, HelpRequested, numberOption, parseCommandLine, UsageError,
} from "../data-scripts/cli";

const ROOT = path.resolve(__dirname, "..");

describe("data-scripts/cli.ts", () => {
  const options = { root: { type: "string", default: "data" }, quick: { type: "boolean", default: false }, tol: { type: "string" } } as const;

  it("parses --k v, --k=v, booleans, defaults and positionals", () => {
    const r = parseCommandLine({ args: ["a", "--tol=0.5", "--quick", "b"], options, positionals: [1, 3] });
    assert.deepEqual(r.positionals, ["a", "b"]);
    assert.equal(r.values.tol, "0.5");
    assert.equal(r.values.quick, true);
    assert.equal(r.values.root, "data");
    assert.equal(parseCommandLine({ args: ["--root", "x"], options }).values.root, "x");
  });

  it("--help and -h anywhere ask for help; unknown options, missing values and wrong counts are usage errors", () => {
    assert.throws(() => parseCommandLine({ args: ["x", "--help"], options }), HelpRequested);
    assert.throws(() => parseCommandLine({ args: ["-h"], options }), HelpRequested);
    assert.throws(() => parseCommandLine({ args: ["--bogus"], options }), (e: unknown) => e instanceof UsageError && /--bogus/.test(e.message));
    assert.throws(() => parseCommandLine({ args: ["--tol"], options }), (e: unknown) => e instanceof UsageError && /--tol/.test(e.message));
    assert.throws(() => parseCommandLine({ args: [], options, positionals: [1, 1] }), /expected 1 argument, got 0/);
    assert.throws(() => parseCommandLine({ args: ["a", "b"], options, positionals: [1, 1] }), /expected 1 argument, got 2: "a" "b"/);
    assert.throws(() => parseCommandLine({ args: ["a"], options }), /expected 0 arguments, got 1/);
    assert.throws(() => parseCommandLine({ args: [], options, positionals: [2, Infinity] }), /expected at least 2 arguments/);
  });

  it("numberOption: absent is undefined; a bad value names the option, the rule and the value", () => {
    assert.equal(numberOption({}, "tol"), undefined);
    assert.equal(numberOption({ tol: "1e-5" }, "tol", { positive: true }), 1e-5);
    assert.equal(numberOption({ n: "0" }, "n", { integer: true, min: 0 }), 0);
    const bad = (v: string, rule: Parameters<typeof numberOption>[2], re: RegExp) =>
      assert.throws(() => numberOption({ n: v }, "n", rule), (e: unknown) => e instanceof UsageError && re.test(e.message));
    bad("abc", {}, /^--n must be a number, got "abc"$/);
    bad("", {}, /got ""/);
    bad("1.5", { integer: true }, /^--n must be an integer, got "1.5"$/);
    bad("0", { positive: true }, /> 0/);
    bad("-1", { min: 0 }, />= 0/);
    bad("2", { min: 0, max: 1 }, /^--n must be a number >= 0 <= 1, got "2"$/);
    bad("Infinity", {}, /got "Infinity"/);
  });

  it("choiceOption accepts listed values only", () => {
    assert.equal(choiceOption({ p: "log" }, "p", ["tty", "log"]), "log");
    assert.equal(choiceOption({}, "p", ["tty", "log"]), undefined);
    assert.throws(() => choiceOption({ p: "fancy" }, "p", ["tty", "log"]), /^UsageError: --p must be one of tty, log, got "fancy"$/);
  });

  it("headerComment returns a script's leading doc comment without the stars", () => {
    const doc = headerComment(path.join(ROOT, "data-scripts", "train-ddpm.ts"));
    assert.match(doc, /^Train \(or resume\) a DDPM/);
    assert.match(doc, /--max-steps N/);
    assert.doesNotMatch(doc, /^\s*\*/m);
  });

  it("commandStatus: 0 / the body's status; help on stdout (0); usage errors with the usage (2); failures named (1 or errorStatus)", async () => {
    const io = () => {
      const out: string[] = [];
      const err: string[] = [];
      return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
    };
    const cmd = { name: "demo-cmd", usage: "usage: demo-cmd <x>" };
    let c = io();
    assert.equal(await commandStatus(cmd, () => undefined, c.io), 0);
    assert.equal(await commandStatus(cmd, async () => 3, c.io), 3);
    assert.deepEqual([c.out, c.err], [[], []]);
    c = io();
    assert.equal(await commandStatus(cmd, () => { throw new HelpRequested(); }, c.io), 0);
    assert.deepEqual(c.out, ["usage: demo-cmd <x>"]);
    c = io();
    assert.equal(await commandStatus(cmd, () => { throw new UsageError("--n must be a number"); }, c.io), 2);
    assert.deepEqual(c.err, ["demo-cmd: --n must be a number\n\nusage: demo-cmd <x>"]);
    c = io();
    assert.equal(await commandStatus(cmd, async () => { throw new Error("disk full"); }, c.io), 1);
    assert.deepEqual(c.err, ["demo-cmd: disk full"]);
    assert.equal(await commandStatus({ ...cmd, errorStatus: 2 }, () => { throw new Error("x"); }, io().io), 2);
  });

  it("scripts use it: a bad option exits 2 naming it, --help exits 0", function () {
    this.timeout(60000);
    const tsx = path.join(ROOT, "node_modules", ".bin", "tsx");
    const run = (script: string, args: string[]) => spawnSync(tsx, [path.join(ROOT, script), ...args], { encoding: "utf8" });
    const train = run("data-scripts/train-ddpm.ts", ["--out", "/nonexistent/run", "--steps", "1.5"]);
    assert.equal(train.status, 2, train.stderr);
    assert.match(train.stderr, /^train-ddpm: --steps must be an integer >= 0, got "1.5"/);
    const cub = run("data-scripts/download-cub.ts", ["--progress", "fancy"]);
    assert.equal(cub.status, 2, cub.stderr);
    assert.match(cub.stderr, /download-cub: --progress must be one of tty, log, silent/);
    const help = run("data-scripts/model-card.ts", ["--help"]);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /--respacing/);
  });
});
