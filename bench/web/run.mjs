// Runs the browser benchmark (bench/web/bench.html) in headless Chromium and reports
// passages/s for Ember's MiniLM and for onnxruntime-web's, their ratio, and how far apart the
// two embeddings of each speech are.
//
//   bash bench/web/run.sh          # sets up web/dist/bench, then runs this
//   node bench/web/run.mjs         # once web/dist/bench is set up
//
// Serves web/dist on a free loopback port (python3 -m http.server), opens a fresh tab for each
// side, back to back (Ember, then ORT, ROUNDS times), and in each tab embeds every speech
// WARMUP times untimed and REPEATS times timed, in batches of BATCH (bench.js, `run`).
// Prints a report and writes it as JSON to $EMBER_WEB_BENCH_OUT (default
// web/dist/bench/result.json). Exits 1 if a side fails or the embeddings differ by more than
// 1e-4 (seen: ~1e-7).
//
// Environment: ROUNDS (1), REPEATS (3), WARMUP (1), BATCH (8), CHROMIUM (/usr/bin/chromium),
// EMBER_WEB_DIST (web/dist), EMBER_WEB_BENCH_OUT, EMBER_WEB_BENCH_CACHE (the export's folder,
// for tokenize.json: ~/.cache/ember/web-bench).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const DIST = path.resolve(process.env.EMBER_WEB_DIST || path.join(ROOT, 'web', 'dist'));
const OUT = path.resolve(process.env.EMBER_WEB_BENCH_OUT || path.join(DIST, 'bench', 'result.json'));
const CACHE = process.env.EMBER_WEB_BENCH_CACHE || path.join(os.homedir(), '.cache', 'ember', 'web-bench');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ROUNDS = Number(process.env.ROUNDS || 1);
const OPTIONS = {
  repeats: Number(process.env.REPEATS || 3),
  warmup: Number(process.env.WARMUP || 1),
  batch: Number(process.env.BATCH || 8),
};
const SIDES = ['ember', 'ort'];
const EMBEDDING_TOLERANCE = 1e-4;

// playwright-core is the one web/tests/e2e.mjs uses, installed by web/test.sh (`npm ci` in web/).
const require = createRequire(path.join(ROOT, 'web', 'package.json'));
const { chromium } = require('playwright-core');

/** web/tests/e2e.mjs's launch flags (shared/notes/browser.md: they work on closed machines). */
const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
  '--disable-dev-shm-usage',
];

// ---------------------------------------------------------------------------------------------
// The static server (as web/tests/e2e.mjs starts it)

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function startServer() {
  const port = await freePort();
  const server = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', '--directory', DIST, String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  server.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}/bench/bench.html`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`the static server exited: ${stderr}`);
    try {
      if ((await fetch(url)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the static server did not answer on ${url}`);
    await sleep(200);
  }
  return { url, server };
}

// ---------------------------------------------------------------------------------------------
// Facts about the machine, for the report

function cpuName() {
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    return line ? line.split(':').slice(1).join(':').trim() : os.cpus()[0]?.model;
  } catch {
    return os.cpus()[0]?.model;
  }
}

function load() {
  return os.loadavg().map((x) => Number(x.toFixed(2)));
}

/** Native tokenizer time written by `export_minilm_onnx.py --time-tokenizer`, if there. */
function nativeTokenizer() {
  try {
    return JSON.parse(fs.readFileSync(path.join(CACHE, 'tokenize.json'), 'utf8'));
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// One side in a fresh tab

async function runSide(browser, url, side) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
  try {
    await page.goto(url, { waitUntil: 'load', timeout: 60_000 });
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
    const result = await page.evaluate(([side, options]) => window.emberBench.run(side, options), [side, OPTIONS]);
    if (errors.length) console.log(`  (${side}: console errors: ${errors.join(' | ')})`);
    return result;
  } catch (e) {
    throw new Error(`${side}: ${e.message || e}${errors.length ? `\n  console: ${errors.join('\n  ')}` : ''}`);
  } finally {
    await context.close();
  }
}

/** Largest |a - b| over all rows, and the row where it is. */
function maxAbsDiff(a, b) {
  let worst = 0;
  let where = -1;
  a.forEach((row, i) => {
    row.forEach((x, j) => {
      const d = Math.abs(x - b[i][j]);
      if (d > worst) [worst, where] = [d, i];
    });
  });
  return { worst, where };
}

/** The middle value (the mean of the two middle ones for an even count). */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const { url, server } = await startServer();
  // As web/tests/e2e.mjs launches it (playwright gives the browser a fresh temporary profile).
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const report = {
    chromium: browser.version(),
    cpu: cpuName(),
    cores: os.cpus().length,
    load_before: load(),
    options: { ...OPTIONS, rounds: ROUNDS },
    rounds: [],
  };
  let failed = false;
  try {
    const last = {};
    for (let round = 0; round < ROUNDS; round++) {
      const entry = { load: load() };
      for (const side of SIDES) {
        const loadAtStart = load();
        const r = await runSide(browser, url, side);
        r.load_at_start = loadAtStart;
        last[side] = r.embeddings;
        delete r.embeddings;
        entry[side] = r;
        console.log(
          `round ${round + 1} ${side.padEnd(5)} ${r.passages_per_s_median.toFixed(2)} passages/s median ` +
            `(best ${r.passages_per_s_best.toFixed(2)}; passes ${r.runs_ms.map((m) => (m / 1000).toFixed(2)).join(', ')} s; ` +
            `warmup ${r.warmup_ms.map((m) => (m / 1000).toFixed(2)).join(', ')} s; model load ${(r.load_ms / 1000).toFixed(2)} s; ` +
            `loadavg ${loadAtStart.join(' ')})`,
        );
      }
      entry.diff = maxAbsDiff(last.ember, last.ort);
      report.rounds.push(entry);
    }
    report.load_after = load();
  } finally {
    await browser.close();
    server.kill();
  }

  // Summary over rounds: the median of each side's per-round medians (their mean for 2 rounds).
  const rate = (side) => median(report.rounds.map((r) => r[side].passages_per_s_median));
  const first = report.rounds[0];
  const ember = rate('ember');
  const ortRate = rate('ort');
  const diff = Math.max(...report.rounds.map((r) => r.diff.worst));
  const tok = nativeTokenizer();
  report.summary = {
    passages: first.ember.passages,
    tokens: first.ember.tokens,
    ember_passages_per_s: ember,
    ort_passages_per_s: ortRate,
    ember_over_ort: ember / ortRate,
    max_abs_diff: diff,
    ort_version: first.ort.info.ort_version,
    native_tokenizer_ms_per_pass: tok?.ms_per_pass ?? null,
  };
  // An estimate of Ember's rate without its tokenizer: its pass time less the time the same
  // `tokenizers` crate takes natively for the same texts. In wasm the tokenizer is slower than
  // natively, so this subtracts too little: the tokenizer-free rate is at least this.
  if (tok) {
    const passMs = (first.ember.passages * 1000) / ember;
    report.summary.ember_passages_per_s_less_native_tokenizer = (first.ember.passages * 1000) / (passMs - tok.ms_per_pass);
    report.summary.native_tokenizer_share = tok.ms_per_pass / passMs;
  }
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, `${JSON.stringify(report, null, 1)}\n`);

  const s = report.summary;
  console.log('');
  console.log(`MiniLM (all-MiniLM-L6-v2) embedding in headless Chromium ${report.chromium}, one thread, wasm SIMD128`);
  console.log(`CPU ${report.cpu} (${report.cores} cores); load ${report.load_before.join(' ')} before, ${report.load_after.join(' ')} after`);
  console.log(`${s.passages} Hamlet speeches (${s.tokens} tokens), batches of ${OPTIONS.batch}, ${OPTIONS.warmup} warmup + ${OPTIONS.repeats} timed passes, ${ROUNDS} round(s)`);
  console.log(`  Ember (incl. its tokenizer)      ${s.ember_passages_per_s.toFixed(2)} passages/s`);
  if (tok) {
    console.log(
      `  Ember less native tokenizer time ${s.ember_passages_per_s_less_native_tokenizer.toFixed(2)} passages/s ` +
        `(tokenizing a pass natively: ${tok.ms_per_pass.toFixed(1)} ms, ${(100 * s.native_tokenizer_share).toFixed(1)}% of Ember's pass)`,
    );
  }
  console.log(`  onnxruntime-web ${s.ort_version} (wasm EP)  ${s.ort_passages_per_s.toFixed(2)} passages/s (token ids precomputed)`);
  console.log(`  Ember / ORT                      ${s.ember_over_ort.toFixed(3)}`);
  console.log(`  max |Ember - ORT| over all embeddings ${s.max_abs_diff.toExponential(2)}`);
  console.log(`report: ${OUT}`);
  if (!(diff <= EMBEDDING_TOLERANCE)) {
    console.log(`FAIL: the embeddings differ by ${diff} > ${EMBEDDING_TOLERANCE}`);
    failed = true;
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack || e.message : e);
  process.exit(1);
});
