// The page: three panels (search, train, chat), each driving its own worker (worker.js).
//
// State the end-to-end test reads (web/tests/e2e.mjs):
//   #status-search / #status-train / #status-chat   data-state: idle | loading | embedding |
//                                                    ready | searching | running | stopping |
//                                                    stopped | done | generating | error
//   #error-search / #error-train / #error-chat       visible error text (hidden when empty)
//   #search-results li                               data-index, data-score; the list's
//                                                    data-query is the query they answer
//   #train-step (data-value), #train-losses (JSON array of every loss, full precision),
//   #train-tps (data-value), #train-sample (data-step)
//   #chat-reply (the latest reply; data-done="true" when finished), #chat-tps (data-value)
// Test hooks: window.emberDebug (below).

/** Thrown for requests cut short by a wasm trap; the panel has been reset already. */
class CrashError extends Error {}

/**
 * One panel's worker. `call` sends a request and returns a Promise of its value; progress
 * events go to `onEvent`. The worker starts on first use and is started afresh after a crash.
 */
class ModelWorker {
  constructor(name, onCrash) {
    this.name = name;
    this.onCrash = onCrash;
    this.worker = null;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject, onEvent}
  }

  start() {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: this.name });
    worker.onmessage = (msg) => this.receive(msg.data);
    // An exception the worker did not catch, or a script that failed to load.
    worker.onerror = (e) => {
      e.preventDefault();
      this.crashed(e.message || 'the worker failed');
    };
    worker.onmessageerror = () => this.crashed('a message from the worker could not be read');
    this.worker = worker;
  }

  call(type, args = {}, onEvent = () => {}) {
    if (!this.worker) this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onEvent });
      this.worker.postMessage({ id, type, ...args });
    });
  }

  receive({ id, kind, ...rest }) {
    const request = this.pending.get(id);
    if (kind === 'crash') {
      this.crashed(rest.message);
      return;
    }
    if (!request) return;
    if (kind === 'event') {
      request.onEvent(rest.event);
    } else if (kind === 'done') {
      this.pending.delete(id);
      request.resolve(rest.value);
    } else if (kind === 'error') {
      this.pending.delete(id);
      request.reject(new Error(rest.message));
    }
  }

  /** Ends the worker (its model is dropped with it); pending requests fail. */
  stop() {
    if (this.worker) this.worker.terminate();
    this.worker = null;
    for (const { reject } of this.pending.values()) reject(new Error(`${this.name} was stopped`));
    this.pending.clear();
  }

  /** The wasm instance trapped: end the worker, fail what was pending, tell the panel. */
  crashed(message) {
    if (this.worker) this.worker.terminate();
    this.worker = null;
    const error = new CrashError(`The model crashed and its worker was restarted: ${message}`);
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
    this.onCrash(error);
  }
}

// ---------------------------------------------------------------------------------------------
// Small DOM helpers

const $ = (id) => document.getElementById(id);

function setStatus(panel, state, text) {
  const el = $(`status-${panel}`);
  el.dataset.state = state;
  el.textContent = text;
}

function showError(panel, error) {
  const el = $(`error-${panel}`);
  el.textContent = error instanceof Error ? error.message : String(error);
  el.hidden = false;
}

function clearError(panel) {
  const el = $(`error-${panel}`);
  el.textContent = '';
  el.hidden = true;
}

/** A failed request: show it, unless it was a crash (reported by the crash handler). */
function failed(panel, error) {
  if (error instanceof CrashError) return;
  console.warn(`${panel}:`, error); // a warning: an Ember error is an expected outcome
  showError(panel, error);
  setStatus(panel, 'error', 'failed');
}

function formatBytes(n) {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} kB`;
}

/** Shows a download event on the panel's progress bar (`<panel>-download`). */
function showDownload(panel, { file, loaded, total }) {
  $(`${panel}-download`).hidden = false;
  const bar = $(`${panel}-download-bar`);
  bar.max = total || 1;
  bar.value = total ? loaded : 0;
  const size = total ? `${formatBytes(loaded)} / ${formatBytes(total)}` : formatBytes(loaded);
  $(`${panel}-download-text`).textContent = `${file}: ${size}`;
}

// ---------------------------------------------------------------------------------------------
// Search

const searchWorker = new ModelWorker('search', (error) => {
  showError('search', error);
  setStatus('search', 'error', 'crashed: load again');
  $('search-load').disabled = false;
  $('search-device').disabled = false;
  $('search-query').disabled = true;
  $('search-go').disabled = true;
});

async function loadSearch() {
  clearError('search');
  $('search-load').disabled = true;
  $('search-device').disabled = true;
  setStatus('search', 'loading', 'downloading MiniLM and Hamlet…');
  try {
    const device = $('search-device').value;
    const info = await searchWorker.call('search-load', { device }, (ev) => {
      if (ev.type === 'download') {
        showDownload('search', ev);
      } else if (ev.type === 'speeches') {
        setStatus('search', 'embedding', `embedding ${ev.total} speeches…`);
        $('search-embed').hidden = false;
      } else if (ev.type === 'embedded') {
        $('search-embed-bar').max = ev.total;
        $('search-embed-bar').value = ev.done;
        $('search-embed-text').textContent = `embedded ${ev.done}/${ev.total}`;
      }
    });
    const status = $('status-search');
    status.dataset.count = info.count;
    status.dataset.adapter = info.adapter;
    status.dataset.passagesPerS = info.passages_per_s;
    setStatus(
      'search',
      'ready',
      `${info.count} speeches embedded in ${info.seconds.toFixed(1)} s ` +
        `(${info.passages_per_s.toFixed(1)} passages/s on ${info.adapter})`,
    );
    $('search-query').disabled = false;
    $('search-go').disabled = false;
    $('search-query').focus();
  } catch (error) {
    failed('search', error);
    $('search-load').disabled = false;
    $('search-device').disabled = false;
  }
}

function renderResults(query, results) {
  const list = $('search-results');
  list.replaceChildren();
  for (const { index, score, speaker, text } of results) {
    const item = document.createElement('li');
    item.dataset.index = index;
    item.dataset.score = score;
    const who = document.createElement('span');
    who.className = 'speaker';
    who.textContent = speaker;
    const how = document.createElement('span');
    how.className = 'score';
    how.textContent = `score ${score.toFixed(3)} · speech ${index}`;
    const what = document.createElement('p');
    what.className = 'text';
    what.title = 'click to show the whole speech';
    what.textContent = text;
    what.addEventListener('click', () => what.classList.toggle('expanded'));
    item.append(who, how, what);
    list.append(item);
  }
  list.dataset.query = query;
}

async function runSearch(event) {
  event.preventDefault();
  const query = $('search-query').value.trim();
  if (!query) return;
  clearError('search');
  $('search-go').disabled = true;
  setStatus('search', 'searching', `searching for “${query}”…`);
  try {
    const { results, ms } = await searchWorker.call('search-rank', { query, k: 5 });
    renderResults(query, results);
    setStatus('search', 'ready', `top ${results.length} of ${$('status-search').dataset.count} speeches (${ms.toFixed(0)} ms)`);
  } catch (error) {
    failed('search', error);
  } finally {
    $('search-go').disabled = !searchWorker.worker;
  }
}

// ---------------------------------------------------------------------------------------------
// Train

const train = {
  losses: [],
  totalSteps: 0,
  window: [], // the last steps' {tokens, ms}, for tokens/s
  drawQueued: false,
};

const trainWorker = new ModelWorker('train', (error) => {
  showError('train', error);
  setStatus('train', 'error', 'crashed: start again');
  setTrainButtons('idle');
});

/** Enables the buttons that make sense in `state`: idle (or done), running, stopped. */
function setTrainButtons(state) {
  $('train-start').disabled = state === 'running';
  $('train-stop').disabled = state !== 'running';
  $('train-resume').disabled = state !== 'stopped';
}

/** The options for a new run: the form's fields, then window.emberDebug.trainOptions. */
function trainOptions() {
  const options = {};
  for (const input of document.querySelectorAll('#train-form [data-option]')) {
    const value = Number(input.value);
    if (input.value.trim() === '' || !Number.isFinite(value)) {
      throw new Error(`${input.dataset.option} must be a number, not “${input.value}”`);
    }
    options[input.dataset.option] = value;
  }
  return { ...options, ...emberDebug.trainOptions };
}

function onTrainEvent(ev) {
  if (ev.type === 'download') {
    showDownload('train', ev);
  } else if (ev.type === 'created') {
    train.totalSteps = ev.total_steps;
    $('train-total').textContent = ev.total_steps;
    $('train-model').textContent =
      `${ev.parameters.toLocaleString('en')} parameters, ${ev.vocab_size} characters`;
    setStatus('train', 'running', 'training…');
  } else if (ev.type === 'step') {
    train.losses.push(ev.loss);
    $('train-losses').textContent = JSON.stringify(train.losses);
    $('train-step').textContent = ev.step;
    $('train-step').dataset.value = ev.step;
    $('train-loss').textContent = Number.isFinite(ev.loss) ? ev.loss.toFixed(4) : String(ev.loss);
    train.window.push({ tokens: ev.tokens_per_step, ms: ev.ms });
    if (train.window.length > 20) train.window.shift();
    const tokens = train.window.reduce((sum, s) => sum + s.tokens, 0);
    const ms = train.window.reduce((sum, s) => sum + s.ms, 0);
    const tps = ms > 0 ? (tokens * 1000) / ms : 0;
    $('train-tps').textContent = tps.toFixed(0);
    $('train-tps').dataset.value = tps;
    queueDraw();
  } else if (ev.type === 'sample') {
    $('train-sample').textContent = `step ${ev.step}:\n${ev.text}`;
    $('train-sample').dataset.step = ev.step;
  }
}

/** Runs the loop (start or resume) until it finishes, is stopped or fails. */
async function runTraining(type, args) {
  clearError('train');
  setTrainButtons('running');
  try {
    const result = await trainWorker.call(type, args, onTrainEvent);
    if (result.finished) {
      setStatus('train', 'done', `finished ${result.step} steps`);
      setTrainButtons('idle');
    } else {
      setStatus('train', 'stopped', `stopped at step ${result.step}`);
      setTrainButtons(result.step > 0 ? 'stopped' : 'idle');
    }
  } catch (error) {
    failed('train', error);
    setTrainButtons('idle');
  }
}

function startTraining() {
  let options;
  try {
    options = trainOptions();
  } catch (error) {
    failed('train', error);
    return;
  }
  train.losses = [];
  train.window = [];
  $('train-losses').textContent = '[]';
  $('train-step').textContent = '0';
  $('train-step').dataset.value = 0;
  $('train-sample').textContent = '(a sample appears here)';
  $('train-sample').dataset.step = '';
  setStatus('train', 'loading', 'downloading Shakespeare…');
  queueDraw();
  runTraining('train-start', { options });
}

async function stopTraining() {
  $('train-stop').disabled = true;
  setStatus('train', 'stopping', 'stopping after this step…');
  try {
    await trainWorker.call('train-stop');
  } catch (error) {
    failed('train', error);
  }
}

function resumeTraining() {
  setStatus('train', 'running', 'training…');
  runTraining('train-resume', {});
}

// The loss plot, drawn by hand on the canvas.

function queueDraw() {
  if (train.drawQueued) return;
  train.drawQueued = true;
  requestAnimationFrame(() => {
    train.drawQueued = false;
    drawLosses();
  });
}

/** A round step between axis ticks, giving about `count` ticks over `span`. */
function tickStep(span, count) {
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function drawLosses() {
  const canvas = $('train-plot');
  // Draw at the displayed size times the pixel ratio, so lines stay sharp.
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = Math.round(width * 0.4);
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);

  const pad = { left: 48, right: 14, top: 12, bottom: 34 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const losses = train.losses.filter(Number.isFinite);
  const n = train.losses.length;

  // Axis ranges: steps from 0 to a round number past the last one; loss over what was seen.
  const xMax = Math.max(10, n);
  const xStep = tickStep(xMax, 6);
  const xEnd = Math.ceil(xMax / xStep) * xStep;
  let yMin = losses.length ? Math.min(...losses) : 0;
  let yMax = losses.length ? Math.max(...losses) : 5;
  if (yMax - yMin < 0.1) {
    yMin -= 0.05;
    yMax += 0.05;
  }
  const yStep = tickStep(yMax - yMin, 5);
  yMin = Math.floor(yMin / yStep) * yStep;
  yMax = Math.ceil(yMax / yStep) * yStep;
  const x = (step) => pad.left + (step / xEnd) * plotW;
  const y = (loss) => pad.top + (1 - (loss - yMin) / (yMax - yMin)) * plotH;

  // Grid, ticks and labels.
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#5d6873';
  ctx.strokeStyle = '#e6e9ec';
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let v = yMin; v <= yMax + yStep / 2; v += yStep) {
    ctx.beginPath();
    ctx.moveTo(pad.left, y(v));
    ctx.lineTo(pad.left + plotW, y(v));
    ctx.stroke();
    ctx.fillText(v.toFixed(yStep < 1 ? 1 : 0), pad.left - 6, y(v));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (let s = 0; s <= xEnd; s += xStep) {
    ctx.fillText(String(s), x(s), pad.top + plotH + 5);
  }
  ctx.strokeStyle = '#5d6873';
  ctx.beginPath();
  ctx.moveTo(pad.left, pad.top);
  ctx.lineTo(pad.left, pad.top + plotH);
  ctx.lineTo(pad.left + plotW, pad.top + plotH);
  ctx.stroke();
  ctx.fillText('step', pad.left + plotW / 2, pad.top + plotH + 19);
  ctx.save();
  ctx.translate(12, pad.top + plotH / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = 'middle';
  ctx.fillText('loss', 0, 0);
  ctx.restore();

  if (n === 0) return;
  // The loss at each step (step i + 1 for losses[i]), and a smoothed line over it.
  const line = (values, color, lineWidth) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = lineWidth;
    ctx.beginPath();
    values.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i + 1), y(v)) : ctx.lineTo(x(i + 1), y(v))));
    ctx.stroke();
  };
  const clamped = train.losses.map((v) => (Number.isFinite(v) ? v : yMax));
  line(clamped, 'rgba(194, 65, 12, 0.35)', 1);
  let ema = clamped[0];
  line(clamped.map((v) => (ema = 0.9 * ema + 0.1 * v)), '#9a3412', 2);
}

// ---------------------------------------------------------------------------------------------
// Chat

const chatWorker = new ModelWorker('chat', (error) => {
  showError('chat', error);
  setStatus('chat', 'error', 'crashed: load again');
  $('chat-model').textContent = '';
  $('chat-load').disabled = false;
  for (const id of ['chat-message', 'chat-send', 'chat-reset']) $(id).disabled = true;
});

async function loadChat() {
  clearError('chat');
  $('chat-load').disabled = true;
  setStatus('chat', 'loading', 'downloading SmolLM2…');
  try {
    const { describe } = await chatWorker.call('chat-load', {}, (ev) => {
      if (ev.type === 'download') showDownload('chat', ev);
    });
    $('chat-model').textContent = describe;
    setStatus('chat', 'ready', 'ready');
    for (const id of ['chat-message', 'chat-send', 'chat-reset']) $(id).disabled = false;
    $('chat-message').focus();
  } catch (error) {
    failed('chat', error);
    $('chat-load').disabled = false;
  }
}

/** Adds a turn to the conversation and returns its element. */
function addTurn(role, text) {
  const turn = document.createElement('div');
  turn.className = `turn ${role}`;
  turn.textContent = text;
  $('chat-log').append(turn);
  return turn;
}

async function sendChat(event) {
  event.preventDefault();
  const message = $('chat-message').value.trim();
  if (!message) return;
  const maxNewTokens = Number($('chat-max-tokens').value);
  clearError('chat');
  $('chat-message').value = '';
  $('chat-send').disabled = true;
  $('chat-reset').disabled = true;
  addTurn('user', message);
  // The reply being written is always #chat-reply.
  $('chat-reply')?.removeAttribute('id');
  const reply = addTurn('assistant', '');
  reply.id = 'chat-reply';
  reply.dataset.done = 'false';
  setStatus('chat', 'generating', 'writing…');
  const log = $('chat-log');
  try {
    const result = await chatWorker.call('chat-send', { message, max_new_tokens: maxNewTokens }, (ev) => {
      if (ev.type === 'piece') {
        reply.textContent += ev.piece;
        log.scrollTop = log.scrollHeight;
      }
    });
    reply.textContent = result.reply;
    reply.dataset.done = 'true';
    const tps = result.decode_tokens_per_s;
    $('chat-tps').textContent = tps ? tps.toFixed(1) : '–';
    $('chat-tps').dataset.value = tps ?? 0;
    const prefill = result.prefill_ms === null ? '' : `, first token after ${(result.prefill_ms / 1000).toFixed(1)} s`;
    setStatus('chat', 'ready', `${result.pieces} tokens${prefill}`);
  } catch (error) {
    reply.dataset.done = 'error';
    if (!reply.textContent) reply.textContent = '(no reply)';
    failed('chat', error);
  } finally {
    const alive = Boolean(chatWorker.worker);
    $('chat-send').disabled = !alive;
    $('chat-reset').disabled = !alive;
  }
}

async function resetChat() {
  clearError('chat');
  try {
    await chatWorker.call('chat-reset');
    $('chat-log').replaceChildren();
    setStatus('chat', 'ready', 'new conversation');
  } catch (error) {
    failed('chat', error);
  }
}

// ---------------------------------------------------------------------------------------------
// Test hooks (used by web/tests/e2e.mjs; harmless for a person)

const workers = { search: searchWorker, train: trainWorker, chat: chatWorker };

const emberDebug = {
  /** The raw MiniLM embeddings of `texts` (the search model must be loaded): number[][]. */
  async embed(texts) {
    const { rows } = await searchWorker.call('embed', { texts });
    return rows;
  },
  /**
   * MiniLM on WebGPU in a worker of its own, without touching the panel: the adapter's
   * description and the embeddings of `texts` ({adapter, rows: number[][]}).
   */
  async webgpuEmbed(texts) {
    const worker = new ModelWorker('webgpu-check', () => {});
    try {
      return await worker.call('webgpu-embed', { texts });
    } finally {
      worker.stop();
    }
  },
  /** Train options merged over the form's fields when Start is pressed. */
  trainOptions: {},
  /** Which optional exports the wasm build has: {debug_panic}. */
  capabilities(panel = 'search') {
    return workers[panel].call('capabilities');
  },
  /** Makes the panel's wasm panic (needs the build's debug_panic export). */
  panic(panel) {
    return workers[panel].call('debug-panic').catch((error) => {
      if (!(error instanceof CrashError)) throw error;
      return error.message;
    });
  },
};
window.emberDebug = emberDebug;

// ---------------------------------------------------------------------------------------------
// Wiring

$('search-load').addEventListener('click', loadSearch);
$('search-form').addEventListener('submit', runSearch);
$('train-form').addEventListener('submit', (event) => event.preventDefault());
$('train-start').addEventListener('click', startTraining);
$('train-stop').addEventListener('click', stopTraining);
$('train-resume').addEventListener('click', resumeTraining);
$('chat-load').addEventListener('click', loadChat);
$('chat-form').addEventListener('submit', sendChat);
$('chat-reset').addEventListener('click', resetChat);
window.addEventListener('resize', queueDraw);
drawLosses();
document.body.dataset.ready = 'true';
