import { strict as assert } from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import { AddressInfo } from "net";
import * as path from "path";
import * as tar from "tar";
import { loadDataset } from "../lib/data";
import { fetchDataset, ManualDownloadError } from "../lib/data/fetch";
import { DATASET_SOURCES } from "../lib/data/sources";
import { ChecksumError, download, DownloadError, extractArchive, verifyFile } from "../lib/data/download";
import { tempDir, removeTempDir } from "./helpers/tmp";

const FIX = path.join(__dirname, "fixtures", "datasets");

/** How the test server answers /file requests. */
interface Behaviour {
  /** Honour Range requests (206); false answers 200 with the whole body, as some servers do. */
  ranges: boolean;
  /** Destroy the socket after this many body bytes, for the next `cutTimes` requests. */
  cutAfter?: number;
  cutTimes?: number;
  /** Send a 206 whose Content-Range starts at 0 whatever was asked. */
  badContentRange?: boolean;
}

interface Logged {
  url: string;
  range?: string;
}

describe("downloads (real HTTP server on 127.0.0.1)", function () {
  this.timeout(30000);
  let server: http.Server;
  let base = "";
  let tmp = "";
  let payload: Buffer;
  let tgz: Buffer;
  let cubTgz: Buffer;
  let behaviour: Behaviour = { ranges: true };
  let log: Logged[] = [];
  const md5 = (b: Buffer) => crypto.createHash("md5").update(b).digest("hex");
  const sha256 = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

  function serve(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) {
    const range = req.headers.range;
    let start = 0;
    const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
    if (m && behaviour.ranges) {
      start = behaviour.badContentRange ? 0 : Number(m[1]);
      if (start >= body.length) {
        res.writeHead(416, { "content-range": `bytes */${body.length}` });
        res.end();
        return;
      }
      res.writeHead(206, { "content-length": body.length - start, "content-range": `bytes ${start}-${body.length - 1}/${body.length}` });
    } else {
      res.writeHead(200, { "content-length": body.length });
    }
    const rest = body.subarray(start);
    if (behaviour.cutAfter !== undefined && (behaviour.cutTimes ?? 1) > 0) {
      behaviour.cutTimes = (behaviour.cutTimes ?? 1) - 1;
      res.write(rest.subarray(0, behaviour.cutAfter), () => res.socket?.destroy());
      return;
    }
    res.end(rest);
  }

  before(async function () {
    tmp = tempDir("download-test");
    payload = crypto.randomBytes(300_000);
    // A small .tar.gz made with the tar package.
    const src = path.join(tmp, "src");
    fs.mkdirSync(path.join(src, "pack", "sub"), { recursive: true });
    fs.writeFileSync(path.join(src, "pack", "a.txt"), "hello\n");
    fs.writeFileSync(path.join(src, "pack", "sub", "b.bin"), payload.subarray(0, 5000));
    await tar.c({ gzip: true, file: path.join(tmp, "pack.tgz"), cwd: src }, ["pack"]);
    tgz = fs.readFileSync(path.join(tmp, "pack.tgz"));
    await tar.c({ gzip: true, file: path.join(tmp, "cub.tgz"), cwd: FIX }, ["CUB_200_2011"]);
    cubTgz = fs.readFileSync(path.join(tmp, "cub.tgz"));
    server = http.createServer((req, res) => {
      log.push({ url: req.url ?? "", range: req.headers.range });
      const url = req.url ?? "";
      if (url === "/file.bin") serve(req, res, payload);
      else if (url === "/pack.tgz") serve(req, res, tgz);
      else if (url === "/CUB_200_2011.tgz?download=1") serve(req, res, cubTgz);
      else if (url === "/truncated.tgz") serve(req, res, tgz.subarray(0, Math.floor(tgz.length / 2)));
      else if (url === "/redirect") {
        res.writeHead(302, { location: "/hop2" });
        res.end();
      } else if (url === "/hop2") {
        res.writeHead(301, { location: `${base}/file.bin` });
        res.end();
      } else if (url === "/error500") {
        res.writeHead(500, "Internal Server Error");
        res.end("boom");
      } else {
        res.writeHead(404, "Not Found");
        res.end();
      }
    });
    server.keepAliveTimeout = 100;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async function () {
    server?.closeAllConnections?.();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    if (tmp) removeTempDir(tmp);
  });

  beforeEach(function () {
    behaviour = { ranges: true };
    log = [];
  });

  const quiet = { progressMode: "silent" as const, retryDelayMs: 5, log: () => undefined };
  const dest = (name: string) => path.join(tmp, "out", name);

  it("downloads, checks md5 and sha256, writes a sha256 sidecar, and does nothing on a rerun", async function () {
    const file = dest("plain.bin");
    const r = await download({ ...quiet, url: `${base}/file.bin`, dest: file, md5: md5(payload), sha256: sha256(payload), size: payload.length });
    assert.equal(r.status, "downloaded");
    assert.ok(fs.readFileSync(file).equals(payload));
    assert.equal(fs.readFileSync(`${file}.sha256`, "utf8"), `${sha256(payload)}  plain.bin\n`);
    assert.ok(!fs.existsSync(`${file}.part`));
    const again = await download({ ...quiet, url: `${base}/file.bin`, dest: file, md5: md5(payload) });
    assert.equal(again.status, "present");
    assert.equal(log.length, 1, "the rerun made no request");
  });

  it("resumes a cut connection on rerun with a Range request; the result is byte-identical", async function () {
    const file = dest("cut.bin");
    behaviour = { ranges: true, cutAfter: 100_000 };
    await assert.rejects(download({ ...quiet, retries: 0, url: `${base}/file.bin`, dest: file }), (e: Error) => {
      assert.ok(e instanceof DownloadError);
      assert.match(e.message, /(aborted|closed before the end of the body) after \d+ bytes/);
      assert.match(e.message, /rerun to resume/);
      return true;
    });
    assert.ok(!fs.existsSync(file));
    const partSize = fs.statSync(`${file}.part`).size;
    // What arrived before the cut (bytes still in the socket's buffer when it closed may be lost: fine, resumed).
    assert.ok(partSize > 0 && partSize <= 100_000, `${partSize} bytes in the part`);
    const r = await download({ ...quiet, retries: 0, url: `${base}/file.bin`, dest: file, md5: md5(payload) });
    assert.equal(r.status, "resumed");
    assert.equal(log[1].range, `bytes=${partSize}-`);
    assert.ok(fs.readFileSync(file).equals(payload));
    assert.equal(r.sha256, sha256(payload), "the hash covers the resumed prefix too");
  });

  it("retries by itself after a cut, resuming, within one call", async function () {
    const file = dest("auto.bin");
    behaviour = { ranges: true, cutAfter: 50_000, cutTimes: 2 };
    const r = await download({ ...quiet, retries: 3, url: `${base}/file.bin`, dest: file, sha256: sha256(payload) });
    assert.equal(log.length, 3);
    assert.equal(log[0].range, undefined);
    const resumedAt = log.slice(1).map((l) => Number(/^bytes=(\d+)-$/.exec(l.range ?? "")?.[1]));
    assert.ok(resumedAt[0] > 0 && resumedAt[1] > resumedAt[0], JSON.stringify(log));
    assert.equal(r.status, "downloaded"); // "resumed" is for a .part left by an earlier run
    assert.ok(fs.readFileSync(file).equals(payload));
  });

  it("restarts from byte 0 when the server answers 200 instead of 206", async function () {
    const file = dest("norange.bin");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(`${file}.part`, payload.subarray(0, 1234));
    behaviour = { ranges: false };
    const notes: string[] = [];
    const r = await download({ ...quiet, log: (m) => notes.push(m), url: `${base}/file.bin`, dest: file, md5: md5(payload) });
    assert.equal(log[0].range, "bytes=1234-");
    assert.equal(r.restarted, true);
    assert.equal(r.status, "downloaded");
    assert.match(notes.join("\n"), /ignored the Range request \(HTTP 200 instead of 206\); restarting from byte 0/);
    assert.ok(fs.readFileSync(file).equals(payload));
  });

  it("restarts when a 206 starts at the wrong byte, and finishes a complete part on 416", async function () {
    const file = dest("badrange.bin");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(`${file}.part`, payload.subarray(0, 777));
    behaviour = { ranges: true, badContentRange: true };
    const r = await download({ ...quiet, url: `${base}/file.bin`, dest: file, md5: md5(payload) });
    assert.equal(r.restarted, true);
    assert.ok(fs.readFileSync(file).equals(payload));

    const file2 = dest("complete.bin");
    fs.writeFileSync(`${file2}.part`, payload);
    behaviour = { ranges: true };
    const r2 = await download({ ...quiet, url: `${base}/file.bin`, dest: file2, md5: md5(payload) });
    assert.equal(r2.restarted, false);
    assert.ok(fs.readFileSync(file2).equals(payload));
  });

  it("a wrong checksum is a clear error and the bad file is moved to .bad, never left as the final file", async function () {
    const file = dest("wrong.bin");
    const wrong = "0".repeat(32);
    await assert.rejects(download({ ...quiet, url: `${base}/file.bin`, dest: file, md5: wrong }), (e: Error) => {
      assert.ok(e instanceof ChecksumError);
      assert.ok(e.message.includes(`${base}/file.bin`));
      assert.match(e.message, new RegExp(`md5 ${md5(payload)}, expected ${wrong}`));
      assert.match(e.message, /moved to .*wrong\.bin\.bad and not used/);
      return true;
    });
    assert.ok(!fs.existsSync(file));
    assert.ok(!fs.existsSync(`${file}.part`));
    assert.ok(fs.readFileSync(`${file}.bad`).equals(payload));
    await assert.rejects(download({ ...quiet, url: `${base}/file.bin`, dest: dest("short.bin"), size: payload.length + 1 }), /size 300000 bytes, expected 300001/);
  });

  it("server errors name the URL and the status; nothing is left behind", async function () {
    for (const [p, status] of [["/error500", "500 Internal Server Error"], ["/missing", "404 Not Found"]]) {
      const file = dest(`err${p.replace("/", "-")}`);
      await assert.rejects(download({ ...quiet, url: `${base}${p}`, dest: file }), (e: Error) => {
        assert.ok(e instanceof DownloadError);
        assert.equal(e.message, `GET ${base}${p}: HTTP ${status}`);
        return true;
      });
      assert.ok(!fs.existsSync(file));
    }
    assert.equal(log.length, 2, "500 and 404 are not retried");
    await assert.rejects(download({ ...quiet, retries: 1, url: "http://127.0.0.1:1/x", dest: dest("refused") }), /GET http:\/\/127\.0\.0\.1:1\/x: .*ECONNREFUSED.*gave up after 2 tries/);
  });

  it("follows redirects (relative and absolute Location)", async function () {
    const r = await download({ ...quiet, url: `${base}/redirect`, dest: dest("redirected.bin"), md5: md5(payload) });
    assert.equal(r.bytes, payload.length);
    assert.deepEqual(log.map((l) => l.url), ["/redirect", "/hop2", "/file.bin"]);
  });

  it("downloads and extracts a .tar.gz (once), and reports a truncated archive", async function () {
    const archive = dest("pack.tgz");
    await download({ ...quiet, url: `${base}/pack.tgz`, dest: archive, sha256: sha256(tgz) });
    const out = path.join(tmp, "extracted");
    const x = await extractArchive(archive, out, { progressMode: "silent" });
    assert.equal(x.skipped, false);
    assert.equal(fs.readFileSync(path.join(out, "pack", "a.txt"), "utf8"), "hello\n");
    assert.ok(fs.readFileSync(path.join(out, "pack", "sub", "b.bin")).equals(payload.subarray(0, 5000)));
    assert.equal((await extractArchive(archive, out, { progressMode: "silent" })).skipped, true);
    const stripped = path.join(tmp, "stripped");
    await extractArchive(archive, stripped, { progressMode: "silent", strip: 1, force: true });
    assert.ok(fs.existsSync(path.join(stripped, "a.txt")));

    const bad = dest("truncated.tgz");
    await download({ ...quiet, url: `${base}/truncated.tgz`, dest: bad });
    await assert.rejects(extractArchive(bad, path.join(tmp, "bad-out"), { progressMode: "silent" }), /truncated\.tgz: cannot extract/);
    assert.ok(!fs.existsSync(`${bad}.extracted`));
  });

  it("verifies files placed by hand (ImageNet) and names what is wrong", async function () {
    const file = path.join(tmp, "manual.tar");
    fs.writeFileSync(file, payload);
    const d = await verifyFile(file, { md5: md5(payload) }, { progressMode: "silent" });
    assert.equal(d.sha256, sha256(payload));
    assert.ok(fs.existsSync(`${file}.sha256`) && fs.existsSync(`${file}.md5`));
    await assert.rejects(verifyFile(file, { md5: "f".repeat(32) }), new RegExp(`manual\\.tar: md5 ${md5(payload)}, expected f{32}`));
    await assert.rejects(verifyFile(path.join(tmp, "absent.tar"), {}), /absent\.tar not found/);
  });

  describe("fetching datasets", function () {
    it("downloads, verifies and extracts a dataset from its source entry; a rerun does nothing", async function () {
      const root = path.join(tmp, "cub-root");
      const cub = DATASET_SOURCES.cub;
      const source = { ...cub, files: cub.files.map((f) => ({ ...f, url: `${base}/CUB_200_2011.tgz?download=1`, md5: md5(cubTgz) })) };
      await fetchDataset("cub", root, { source, progressMode: "silent", log: () => undefined });
      const ds = await loadDataset("cub", root);
      assert.deepEqual([ds.splits.train.length, ds.splits.test.length], [4, 3]);
      assert.ok(fs.existsSync(path.join(root, "CUB_200_2011.tgz.sha256")));
      log = [];
      await fetchDataset("cub", root, { source, progressMode: "silent", log: () => undefined });
      assert.equal(log.length, 0, "nothing fetched again");
      const wrong = { ...cub, files: cub.files.map((f) => ({ ...f, url: `${base}/CUB_200_2011.tgz?download=1`, md5: "1".repeat(32) })) };
      await assert.rejects(fetchDataset("cub", path.join(tmp, "cub-bad"), { source: wrong, progressMode: "silent", log: () => undefined }), ChecksumError);
    });

    it("explains where to put files that need a login (NABirds, ImageNet) and what will be checked", async function () {
      const root = path.join(tmp, "manual");
      await assert.rejects(fetchDataset("nabirds", root, { progressMode: "silent", log: () => undefined }), (e: Error) => {
        assert.ok(e instanceof ManualDownloadError);
        assert.match(e.message, /terms of use/);
        assert.ok(e.message.includes(path.join(root, "nabirds.tar.gz")));
        return true;
      });
      await assert.rejects(fetchDataset("imagenet", root, { progressMode: "silent", log: () => undefined }), (e: Error) => {
        assert.match(e.message, /image-net\.org/);
        for (const f of ["ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz"]) assert.ok(e.message.includes(path.join(root, f)), f);
        assert.match(e.message, /md5 1d675b47d978889d74fa0da5fadfb00e/);
        assert.match(e.message, /1,281,167 train and 50,000 val/);
        return true;
      });
      await assert.rejects(fetchDataset("cars", root, { progressMode: "silent", log: () => undefined }), /links .* are dead[\s\S]*cars_test_annos_withlabels\.mat/);
    });

    it("ImageNet placed by hand: verifies, extracts the per-class tars into train/<wnid>/ and the flat val + devkit", async function () {
      const root = path.join(tmp, "imagenet-root");
      const build = path.join(tmp, "imagenet-build");
      const wnids = ["n01440764", "n02100735", "n02119789", "n04592741"];
      // Per-class tars of flat JPEGs, packed into the training tar, like ILSVRC2012_img_train.tar.
      fs.mkdirSync(path.join(build, "train"), { recursive: true });
      for (const w of wnids) {
        const d = path.join(build, "cls", w);
        fs.mkdirSync(d, { recursive: true });
        for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(d, `${w}_${i}.JPEG`), "");
        await tar.c({ file: path.join(build, "train", `${w}.tar`), cwd: d }, fs.readdirSync(d));
      }
      fs.mkdirSync(root, { recursive: true });
      await tar.c({ file: path.join(root, "ILSVRC2012_img_train.tar"), cwd: path.join(build, "train") }, wnids.map((w) => `${w}.tar`));
      await tar.c({ file: path.join(root, "ILSVRC2012_img_val.tar"), cwd: path.join(FIX, "imagenet", "val") }, fs.readdirSync(path.join(FIX, "imagenet", "val")));
      await tar.c({ gzip: true, file: path.join(root, "ILSVRC2012_devkit_t12.tar.gz"), cwd: path.join(FIX, "imagenet") }, ["ILSVRC2012_devkit_t12"]);
      const digest = (f: string) => md5(fs.readFileSync(path.join(root, f)));
      const source = { ...DATASET_SOURCES.imagenet, files: DATASET_SOURCES.imagenet.files.map((f) => ({ ...f, md5: digest(f.file) })) };
      await fetchDataset("imagenet", root, { source, progressMode: "silent", log: () => undefined });
      assert.deepEqual(fs.readdirSync(path.join(root, "train")).sort(), wnids, "inner tars extracted into class folders and deleted");
      const ds = await loadDataset("imagenet", root);
      assert.equal(ds.splits.train.length, 12);
      assert.deepEqual(ds.splits.val.map((s) => s.label), [0, 2, 2, 3, 1, 0, 3, 2, 1, 3]);
      // A wrong md5 on a file placed by hand is reported, naming it.
      const bad = { ...source, files: source.files.map((f) => ({ ...f, md5: "2".repeat(32) })) };
      await assert.rejects(fetchDataset("imagenet", root, { source: bad, progressMode: "silent", log: () => undefined }), /ILSVRC2012_devkit_t12\.tar\.gz: md5 [0-9a-f]{32}, expected 2{32}/);
    });
  });
});
