// The browser benchmark's page: embeds the Hamlet speeches of Ember's search panel with
// Ember's MiniLM (its wasm module, web/dist/pkg) or with onnxruntime-web (an ONNX export of the
// same model, bench/web/export_minilm_onnx.py), in batches, and times it.
//
// Served from web/dist/bench/ (bench/web/run.sh puts this file, bench.html, the ONNX model,
// speeches.json and onnxruntime-web's wasm build there). Driven by run.mjs through
// `window.emberBench.run(side, options)`; the page's buttons run the same thing by hand.
//
// What is timed, per pass over all speeches, batch by batch (performance.now()):
//   ember: `Search.embed(texts)`: Ember's tokenizer (inside the wasm module), padding, BERT,
//          mean pooling over the real tokens, unit length, the copy of the result out.
//   ort:   building the padded int64 input tensors from the precomputed ids (the same ids as
//          Ember's tokenizer makes: speeches.json), `session.run` (BERT, mean pooling and unit
//          length are all in the ONNX graph) and reading the output. No tokenizer.
// Both run on the page's main thread, single-threaded (the page is not cross-origin isolated,
// so wasm threads are unavailable to either), with wasm SIMD128.

/** Where this script is: the bench folder in web/dist. */
const HERE = new URL('./', import.meta.url);

/** web/www/worker.js: passages per call and the shortest speech indexed. */
const DEFAULT_BATCH = 8;
const MIN_WORDS = 40;

/** Fetches a file next to the page (or in ../assets), as bytes or JSON. */
async function get(path, as = 'bytes') {
  const url = new URL(path, HERE);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`could not fetch ${url.pathname}: HTTP ${response.status}`);
  if (as === 'json') return response.json();
  if (as === 'text') return response.text();
  return new Uint8Array(await response.arrayBuffer());
}

/** speeches.json: [{speaker, text, ids}], fetched once. */
let speechesPromise = null;
function speeches() {
  speechesPromise ??= get('speeches.json', 'json').then((j) => j.speeches);
  return speechesPromise;
}

/** Lets the page paint and messages arrive between batches (not inside a timed call). */
function breathe() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

// ---------------------------------------------------------------------------------------------
// The two sides. Each has `load()` (not timed in the passes; its time is reported) and
// `embed(batch)` -> Float32Array (batch.length x dim), batch = [{text, ids}].

/** Ember's wasm module: web/dist/pkg/ember_web.js, as web/www/worker.js uses it. */
async function emberSide() {
  const wasm = await import(new URL('../pkg/ember_web.js', HERE).href);
  await wasm.default();
  // The speeches must be the ones Ember's page indexes: Ember's own split_speeches of the play
  // against the list the ORT side's ids were made from (a Python copy of it).
  const play = await get('../assets/hamlet.txt', 'text');
  const own = JSON.parse(wasm.split_speeches(play, MIN_WORDS));
  const list = await speeches();
  if (own.length !== list.length || own.some((s, i) => s.text !== list[i].text || s.speaker !== list[i].speaker)) {
    throw new Error(`Ember's split_speeches gives ${own.length} speeches, speeches.json ${list.length} (or other texts)`);
  }
  const [config, weights, tokenizer] = await Promise.all([
    get('../assets/minilm/config.json'),
    get('../assets/minilm/model.safetensors'),
    get('../assets/minilm/tokenizer.json'),
  ]);
  const search = new wasm.Search(config, weights, tokenizer);
  return {
    dim: search.dim(),
    embed: (batch) => search.embed(batch.map((s) => s.text)),
    info: {},
  };
}

/** onnxruntime-web, wasm execution provider, one thread, SIMD. */
async function ortSide() {
  const ort = await import(new URL('ort/ort.wasm.min.mjs', HERE).href);
  ort.env.wasm.numThreads = 1; // not cross-origin isolated: no SharedArrayBuffer, no threads
  ort.env.wasm.simd = true; // fixed-width SIMD128, the same instruction set Ember's build uses
  ort.env.wasm.proxy = false; // run on this thread, as Ember's side does
  ort.env.wasm.wasmPaths = new URL('ort/', HERE).href;
  const session = await ort.InferenceSession.create(new URL('minilm.onnx', HERE).href, {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
  });
  const output = session.outputNames[0];
  return {
    dim: 0, // read from the first output
    embed: async (batch) => {
      // Right padding with id 0 to the batch's longest row, as Ember pads.
      const t = Math.max(1, ...batch.map((s) => s.ids.length));
      const ids = new BigInt64Array(batch.length * t);
      const mask = new BigInt64Array(batch.length * t);
      batch.forEach((s, row) => {
        s.ids.forEach((id, j) => {
          ids[row * t + j] = BigInt(id);
          mask[row * t + j] = 1n;
        });
      });
      const dims = [batch.length, t];
      const result = await session.run({
        input_ids: new ort.Tensor('int64', ids, dims),
        attention_mask: new ort.Tensor('int64', mask, dims),
      });
      const data = result[output].data; // Float32Array (N, dim), CPU memory
      result[output].dispose?.();
      return data;
    },
    info: { ort_version: ort.env.versions?.web ?? ort.env.versions?.common ?? null, output },
  };
}

const SIDES = { ember: emberSide, ort: ortSide };

// ---------------------------------------------------------------------------------------------
// The benchmark

/**
 * Loads `side`, embeds every speech `warmup` times untimed (the first pass compiles and warms
 * the caches) and then `repeats` timed passes in batches of `batch`. Returns
 * {side, passages, batch, load_ms, warmup_ms, runs_ms, passages_per_s (best and median),
 *  embeddings: number[][] of the last pass, info}.
 */
async function run(side, { repeats = 3, warmup = 1, batch = DEFAULT_BATCH, onProgress = () => {} } = {}) {
  const make = SIDES[side];
  if (!make) throw new Error(`unknown side ${side}; use one of ${Object.keys(SIDES)}`);
  const list = await speeches();
  const t0 = performance.now();
  const model = await make();
  const loadMs = performance.now() - t0;
  const batches = [];
  for (let i = 0; i < list.length; i += batch) batches.push(list.slice(i, i + batch));

  /** One pass over all speeches; returns its time (sum of the batches' times) and rows. */
  const pass = async () => {
    let ms = 0;
    const rows = [];
    for (const b of batches) {
      const start = performance.now();
      const e = await model.embed(b);
      ms += performance.now() - start;
      const dim = e.length / b.length;
      for (let r = 0; r < b.length; r++) rows.push(Array.from(e.subarray(r * dim, (r + 1) * dim)));
      await breathe(); // untimed: between batches, as the page's worker yields between them
    }
    return { ms, rows };
  };

  const warmupMs = [];
  for (let w = 0; w < warmup; w++) {
    onProgress(`${side}: warmup ${w + 1}/${warmup}`);
    warmupMs.push((await pass()).ms);
  }
  const runsMs = [];
  let rows = [];
  for (let r = 0; r < repeats; r++) {
    onProgress(`${side}: pass ${r + 1}/${repeats}`);
    const p = await pass();
    runsMs.push(p.ms);
    rows = p.rows;
  }
  const sorted = [...runsMs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2); // the median pass (mean of the middle two if even)
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return {
    side,
    passages: list.length,
    batch,
    tokens: list.reduce((n, s) => n + s.ids.length, 0),
    load_ms: loadMs,
    warmup_ms: warmupMs,
    runs_ms: runsMs,
    passages_per_s_best: (list.length * 1000) / sorted[0],
    passages_per_s_median: (list.length * 1000) / median,
    embeddings: rows,
    info: model.info,
  };
}

window.emberBench = { run };

// By hand: each button runs one side and shows its numbers (not the embeddings).
const out = document.getElementById('out');
const status = document.getElementById('status');
for (const button of document.querySelectorAll('button[data-side]')) {
  button.addEventListener('click', async () => {
    const side = button.dataset.side;
    document.querySelectorAll('button').forEach((b) => (b.disabled = true));
    try {
      const r = await run(side, { onProgress: (text) => (status.textContent = text) });
      delete r.embeddings;
      out.textContent += `${JSON.stringify(r, null, 1)}\n`;
      status.textContent = `${side}: ${r.passages_per_s_median.toFixed(2)} passages/s (median)`;
    } catch (e) {
      status.textContent = `${side} failed: ${e.message || e}`;
    } finally {
      document.querySelectorAll('button').forEach((b) => (b.disabled = false));
    }
  });
}
document.body.dataset.ready = 'true';
