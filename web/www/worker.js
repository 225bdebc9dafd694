// The Web Worker that owns Ember's wasm module and a panel's model.
//
// The page starts one of these per panel (search, train, chat), so a long computation in one
// panel never blocks another and a crash takes down only that panel's model.
//
// Protocol (see also main.js, class ModelWorker):
//   page -> worker   {id, type, ...arguments}        one request
//   worker -> page   {id, kind: 'event', event}      progress of request `id` (any number of them)
//                    {id, kind: 'done', value}       request `id` succeeded
//                    {id, kind: 'error', message}    request `id` failed with an Ember error;
//                                                    the model is still usable
//                    {id, kind: 'crash', message}    the wasm instance trapped (a Rust panic):
//                                                    this worker is dead, the page terminates it
// Request types and their events/values are listed at `handlers` below.

/** Where the model files are, relative to this script (web/dist/assets). */
const ASSETS = new URL('./assets/', import.meta.url);

/** Passages embedded per call to `Search.add`, so progress can be reported between calls. */
const EMBED_BATCH = 8;

/** Speeches shorter than this many words are not indexed. */
const MIN_WORDS = 40;

/** A sample of the model being trained is posted every this many steps (and on Stop). */
const SAMPLE_EVERY = 100;
const SAMPLE_CHARS = 200;
const SAMPLE_TEMPERATURE = 0.8;

// The wasm module, loaded once when the worker starts. Dynamic import so that a missing or
// broken build is reported as an error message instead of a silent worker failure.
const wasmReady = (async () => {
  const wasm = await import('./pkg/ember_web.js');
  await wasm.default();
  return wasm;
})();
let wasm = null;

/** Set once the wasm instance has trapped: nothing may run in it any more. */
let dead = false;

// ---------------------------------------------------------------------------------------------
// Messages

function post(id, kind, payload) {
  self.postMessage({ id, kind, ...payload });
}

function event(id, ev) {
  post(id, 'event', { event: ev });
}

/** Hands control back to the worker's event loop, so queued messages (Stop) are handled. */
function yieldToMessages() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** The message of anything thrown: wasm-bindgen throws `Error`s, but strings are possible. */
function messageOf(e) {
  if (e instanceof Error) return e.message || String(e);
  return String(e);
}

/** The Rust panic's message after a trap (`last_panic()` reads what the panic hook kept). */
function panicMessage(e) {
  let panic;
  try {
    panic = wasm && wasm.last_panic ? wasm.last_panic() : undefined;
  } catch {
    panic = undefined; // the instance may be too broken even for this
  }
  return panic ? `${panic} (${messageOf(e)})` : messageOf(e);
}

self.onmessage = async (msg) => {
  const { id, type, ...args } = msg.data;
  if (dead) {
    post(id, 'crash', { message: 'the wasm instance has already crashed' });
    return;
  }
  const handler = handlers[type];
  if (!handler) {
    post(id, 'error', { message: `unknown request type ${JSON.stringify(type)}` });
    return;
  }
  try {
    try {
      wasm = await wasmReady;
    } catch (e) {
      throw new Error(`could not load the wasm module pkg/ember_web.js: ${messageOf(e)}`);
    }
    const value = await handler(id, args);
    post(id, 'done', { value });
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) {
      // A Rust panic ends in an `unreachable` trap: the instance's state is lost.
      dead = true;
      post(id, 'crash', { message: panicMessage(e) });
    } else {
      post(id, 'error', { message: messageOf(e) });
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Downloads

/**
 * Fetches an asset as bytes, reading the body as a stream and posting
 * `{type: 'download', file, loaded, total}` events (total is 0 when the server gives no length).
 */
async function download(id, name) {
  const url = new URL(name, ASSETS);
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(`could not fetch ${url.pathname}: HTTP ${response.status} ${response.statusText}`);
  }
  const total = Number(response.headers.get('Content-Length')) || 0;
  const file = name.split('/').pop();
  const reader = response.body.getReader();
  // Fill one buffer of the announced size; collect chunks if the size is unknown or wrong.
  let buffer = total ? new Uint8Array(total) : null;
  let chunks = [];
  let loaded = 0;
  let lastReport = 0;
  event(id, { type: 'download', file, loaded: 0, total });
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (buffer && loaded + value.length <= buffer.length) {
      buffer.set(value, loaded);
    } else {
      if (buffer) {
        chunks.push(buffer.subarray(0, loaded));
        buffer = null;
      }
      chunks.push(value);
    }
    loaded += value.length;
    const now = performance.now();
    if (now - lastReport > 100) {
      lastReport = now;
      event(id, { type: 'download', file, loaded, total });
    }
  }
  event(id, { type: 'download', file, loaded, total: total || loaded });
  if (buffer) return loaded === buffer.length ? buffer : buffer.subarray(0, loaded);
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

async function downloadText(id, name) {
  return new TextDecoder().decode(await download(id, name));
}

// ---------------------------------------------------------------------------------------------
// The models this worker holds (only the panel's own one is ever loaded).

const search = { index: null, speeches: [] };
const training = { run: null, text: null, running: false, stopRequested: false, lastSample: -1 };
const chat = { model: null };

/** `(N, dim)` row-major values as N plain arrays. */
function toRows(flat, dim) {
  const rows = [];
  for (let r = 0; r < flat.length / dim; r++) rows.push(Array.from(flat.subarray(r * dim, (r + 1) * dim)));
  return rows;
}

/** Frees a wasm-bindgen object's Rust side, if it has one. */
function release(object) {
  if (object && typeof object.free === 'function') object.free();
}

// ---------------------------------------------------------------------------------------------
// Training loop

/** A sample of the model being trained, posted as `{type: 'sample', step, text}`. */
function postSample(id) {
  const run = training.run;
  const step = run.steps_done();
  if (step === training.lastSample) return;
  training.lastSample = step;
  event(id, { type: 'sample', step, text: run.sample(SAMPLE_CHARS, SAMPLE_TEMPERATURE) });
}

/**
 * Runs optimizer steps until the run is done or Stop arrives, yielding to the message queue
 * between steps. Posts `{type: 'step', step, loss, lr, grad_norm, tokens_per_step, ms}` per step.
 */
async function trainLoop(id) {
  const run = training.run;
  training.running = true;
  try {
    while (!run.done() && !training.stopRequested) {
      const t0 = performance.now();
      const stats = JSON.parse(run.step()); // f64s as printed by Rust: parsed back exactly
      const ms = performance.now() - t0;
      event(id, { type: 'step', ...stats, ms });
      if (stats.step % SAMPLE_EVERY === 0) postSample(id);
      await yieldToMessages();
    }
  } finally {
    training.running = false;
  }
  postSample(id);
  const finished = run.done();
  return { finished, stopped: !finished, step: run.steps_done(), total: run.total_steps() };
}

// ---------------------------------------------------------------------------------------------
// Request handlers: `(id, args) => value` (may be async; events go to the same id).

const handlers = {
  /**
   * Downloads MiniLM and Hamlet, splits the speeches and embeds them all.
   * Events: download; `{type: 'speeches', total}`; `{type: 'embedded', done, total}`.
   * Value: `{count, dim, seconds, passages_per_s}`.
   */
  async 'search-load'(id, { device = 'cpu' }) {
    if (search.index) throw new Error('the search model is already loaded');
    const config = await download(id, 'minilm/config.json');
    const tokenizer = await download(id, 'minilm/tokenizer.json');
    const weights = await download(id, 'minilm/model.safetensors');
    const play = await downloadText(id, 'hamlet.txt');
    const speeches = JSON.parse(wasm.split_speeches(play, MIN_WORDS));
    event(id, { type: 'speeches', total: speeches.length });

    // On WebGPU the embeddings are read back asynchronously, so the async methods are used
    // on either device (on the CPU their promises are settled at once).
    const index = await wasm.Search.open(config, weights, tokenizer, device);
    const adapter = index.adapter();
    const t0 = performance.now();
    try {
      for (let start = 0; start < speeches.length; start += EMBED_BATCH) {
        const batch = speeches.slice(start, start + EMBED_BATCH).map((s) => s.text);
        index.add_embeddings(await index.embed_async(batch));
        event(id, { type: 'embedded', done: start + batch.length, total: speeches.length });
        await yieldToMessages();
      }
    } catch (e) {
      if (!(e instanceof WebAssembly.RuntimeError)) release(index);
      throw e;
    }
    const seconds = (performance.now() - t0) / 1000;
    search.index = index;
    search.speeches = speeches;
    return {
      count: index.len(),
      dim: index.dim(),
      adapter,
      seconds,
      passages_per_s: speeches.length / seconds,
    };
  },

  /** The `k` speeches closest to `query`. Value: `{results: [{index, score, speaker, text}], ms}`. */
  async 'search-rank'(id, { query, k }) {
    if (!search.index) throw new Error('load the search model first');
    const t0 = performance.now();
    const hits = JSON.parse(await search.index.rank_async(query, k));
    const ms = performance.now() - t0;
    const results = hits.map(({ index, score }) => ({ index, score, ...search.speeches[index] }));
    return { results, ms };
  },

  /**
   * Test hook (window.emberDebug.embed): the raw embeddings of `texts`.
   * Value: `{dim, rows: number[][]}` (plain arrays of the f32 values).
   */
  async embed(id, { texts }) {
    if (!search.index) throw new Error('load the search model first');
    return { dim: search.index.dim(), rows: toRows(await search.index.embed_async(texts), search.index.dim()) };
  },

  /**
   * Test hook (window.emberDebug.webgpuEmbed): MiniLM on WebGPU, the embeddings of `texts`.
   * Value: `{adapter, dim, rows: number[][], ms}`.
   */
  async 'webgpu-embed'(id, { texts }) {
    const config = await download(id, 'minilm/config.json');
    const tokenizer = await download(id, 'minilm/tokenizer.json');
    const weights = await download(id, 'minilm/model.safetensors');
    const index = await wasm.Search.open(config, weights, tokenizer, 'webgpu');
    const adapter = index.adapter();
    try {
      const t0 = performance.now();
      const flat = await index.embed_async(texts);
      const ms = performance.now() - t0;
      return { adapter, dim: index.dim(), rows: toRows(flat, index.dim()), ms };
    } finally {
      release(index);
    }
  },

  /**
   * Starts a new training run with `options` (the Train options object) on Shakespeare.
   * Events: download (first time only); `{type: 'created', parameters, vocab_size, total_steps,
   * options}`; step; sample. Value (when the run finishes or Stop arrives): see trainLoop.
   */
  async 'train-start'(id, { options }) {
    if (training.running) throw new Error('training is already running');
    training.stopRequested = false;
    if (training.text === null) training.text = await downloadText(id, 'shakespeare.txt');
    if (training.stopRequested) return { finished: false, stopped: true, step: 0, total: 0 };
    const run = new wasm.Train(training.text, JSON.stringify(options ?? {}));
    release(training.run);
    training.run = run;
    training.lastSample = -1;
    event(id, {
      type: 'created',
      parameters: run.parameters(),
      vocab_size: run.vocab_size(),
      total_steps: run.total_steps(),
      options,
    });
    return trainLoop(id);
  },

  /** Asks the running loop to stop after its current step. Value: `{running}`. */
  'train-stop'() {
    training.stopRequested = true;
    return { running: training.running };
  },

  /** Continues the stopped run. Events and value as for train-start. */
  'train-resume'(id) {
    if (!training.run) throw new Error('no training run to resume: press Start');
    if (training.running) throw new Error('training is already running');
    if (training.run.done()) throw new Error('the training run has finished');
    training.stopRequested = false;
    return trainLoop(id);
  },

  /** Downloads SmolLM2's GGUF file and loads it. Events: download. Value: `{describe}`. */
  async 'chat-load'(id) {
    if (chat.model) throw new Error('the chat model is already loaded');
    const gguf = await download(id, 'smollm2.gguf');
    chat.model = new wasm.Chat(gguf);
    return { describe: chat.model.describe() };
  },

  /**
   * Sends one user message. Events: `{type: 'piece', piece}` per piece of the reply as it is
   * generated. Value: `{reply, pieces, prefill_ms, decode_ms, decode_tokens_per_s}`; the decode
   * rate counts the pieces after the first (about one per token) over the time they took.
   */
  'chat-send'(id, { message, max_new_tokens }) {
    if (!chat.model) throw new Error('load the chat model first');
    const t0 = performance.now();
    let first = null;
    let last = null;
    let pieces = 0;
    const reply = chat.model.send(message, max_new_tokens, (piece) => {
      const now = performance.now();
      if (first === null) first = now;
      last = now;
      pieces += 1;
      event(id, { type: 'piece', piece });
    });
    const decodeMs = pieces > 1 ? last - first : 0;
    return {
      reply,
      pieces,
      prefill_ms: first === null ? null : first - t0,
      decode_ms: decodeMs,
      decode_tokens_per_s: decodeMs > 0 ? ((pieces - 1) * 1000) / decodeMs : null,
    };
  },

  /** Forgets the conversation. */
  'chat-reset'() {
    if (!chat.model) throw new Error('load the chat model first');
    chat.model.reset();
    return {};
  },

  /** Test hook: makes Rust panic, if the build exports `debug_panic`, to exercise recovery. */
  'debug-panic'() {
    if (typeof wasm.debug_panic !== 'function') throw new Error('this build has no debug_panic export');
    wasm.debug_panic();
    return {};
  },

  /** Which optional exports the build has (used by the e2e test to skip what is missing). */
  capabilities() {
    return { debug_panic: typeof wasm.debug_panic === 'function' };
  },
};
