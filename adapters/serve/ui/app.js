// The page of `plex serve`: the pools, a live tail of one of them (server-
// sent events), fetch by seq and a feed box, all through the server's own
// endpoints. Message content only ever goes into the page as text.
'use strict';

/** How often the pool list is refreshed (ms). */
const REFRESH_MS = 2000;
/** Messages kept on the page; older ones are removed. */
const MAX_SHOWN = 500;
/** Messages shown when a pool is chosen, before the live ones. */
const BACKLOG = 100;
/** Data whose compact JSON is at most this long is shown on one line. */
const ONE_LINE = 100;

const $ = (id) => document.getElementById(id);

const state = {
  /** The last listing's sample of each pool: {newest, at, rate}. */
  samples: new Map(),
  /** The pool being watched, or null. */
  selected: null,
  /** Its EventSource. */
  source: null,
  /** Messages received while paused, shown on resume (at most MAX_SHOWN). */
  held: [],
  paused: false,
};

/** A failed request: the error envelope's kind and message. */
class ApiError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

/** Calls an endpoint; resolves to its JSON, rejects with an ApiError. */
async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { cache: 'no-store', ...options });
  } catch (e) {
    throw new ApiError('Unreachable', `the server cannot be reached (${e.message})`);
  }
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError('Http', `HTTP ${response.status}: ${text.slice(0, 200)}`);
  }
  if (!response.ok || body.error) {
    const error = body.error || {};
    throw new ApiError(error.kind || 'Http', error.message || `HTTP ${response.status}`);
  }
  return body;
}

const poolPath = (name) => `/v0/pools/${encodeURIComponent(name)}`;

// ---- Small DOM helpers: elements are built with text, never parsed HTML.

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

function showError(message) {
  $('alert-text').textContent = message;
  $('alert').hidden = false;
}

function setStatus(id, text, kind) {
  const node = $(id);
  node.textContent = text;
  node.dataset.kind = kind;
}

function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

function formatRate(rate) {
  if (rate === null) return '…';
  if (rate === 0) return '0/s';
  if (rate < 10) return `${rate.toFixed(1)}/s`;
  return `${Math.round(rate).toLocaleString()}/s`;
}

// ---- The pool list, with rates from successive listings.

async function refreshPools() {
  let listing;
  try {
    listing = await api('/v0/pools');
  } catch (e) {
    setStatus('server-status', e.message, 'bad');
    return;
  }
  setStatus('server-status', `updated ${new Date().toLocaleTimeString()}`, 'ok');
  const now = performance.now();
  const rows = [];
  const seen = new Set();
  for (const pool of listing.pools) {
    seen.add(pool.name);
    rows.push(poolRow(pool, sample(pool, now)));
  }
  for (const name of state.samples.keys()) {
    if (!seen.has(name)) state.samples.delete(name);
  }
  $('pool-rows').replaceChildren(...rows);
  $('no-pools').hidden = rows.length > 0;
}

/** Records the pool's newest seq; returns its rate in messages/s (null at first). */
function sample(pool, now) {
  const newest = pool.bounds.newest ?? 0;
  const last = state.samples.get(pool.name);
  let rate = null;
  if (last && newest >= last.newest) {
    const seconds = (now - last.at) / 1000;
    const current = seconds > 0 ? (newest - last.newest) / seconds : 0;
    // Smoothed, so that one burst does not make the figure jump.
    rate = last.rate === null ? current : 0.5 * last.rate + 0.5 * current;
  }
  state.samples.set(pool.name, { newest, at: now, rate });
  return rate;
}

function poolRow(pool, rate) {
  const { bounds, metrics } = pool;
  const seqs = bounds.newest === undefined ? '—' : `${bounds.oldest}–${bounds.newest}`;
  const used = `${formatBytes(metrics.utilization.used_bytes)} / ${formatBytes(pool.file_size)}`;
  const pick = el('button', { type: 'button', class: 'pool-name plain' }, pool.name);
  pick.addEventListener('click', () => select(pool.name));
  const row = el(
    'tr',
    { 'data-pool': pool.name },
    el('td', {}, pick),
    el('td', { class: 'num' }, metrics.message_count.toLocaleString()),
    el('td', { class: 'num' }, seqs),
    el('td', { class: 'num', title: `${metrics.utilization.used_percent}% of the ring used` }, used),
    el('td', { class: 'num' }, formatRate(rate)),
  );
  if (pool.name === state.selected) row.classList.add('selected');
  return row;
}

// ---- The live tail of the chosen pool.

async function select(name) {
  if (state.source) state.source.close();
  state.source = null;
  state.selected = name;
  state.held = [];
  setPaused(false);
  if (location.hash !== `#${encodeURIComponent(name)}`) {
    history.replaceState(null, '', `#${encodeURIComponent(name)}`);
  }
  for (const row of $('pool-rows').children) {
    row.classList.toggle('selected', row.dataset.pool === name);
  }
  $('placeholder').hidden = true;
  $('pool-view').hidden = false;
  $('pool-title').textContent = name;
  $('messages').replaceChildren();
  $('fetch-result').replaceChildren();
  $('feed-result').textContent = '';
  let since = null;
  try {
    const { pool } = await api(`${poolPath(name)}/info`);
    if (pool.bounds.newest !== undefined) {
      since = Math.max(pool.bounds.oldest, pool.bounds.newest - BACKLOG + 1);
    }
  } catch (e) {
    setStatus('tail-status', 'stopped', 'bad');
    showError(`${name}: ${e.message}`);
    return;
  }
  if (state.selected === name) follow(name, since);
}

function follow(name, since) {
  const query = new URLSearchParams();
  if (since !== null) query.set('since_seq', since);
  for (const tag of splitTags($('tag-filter').value)) query.append('tag', tag);
  const source = new EventSource(`/v0/ui/pools/${encodeURIComponent(name)}/events?${query}`);
  state.source = source;
  setStatus('tail-status', 'connecting…', 'wait');
  source.addEventListener('open', () => setStatus('tail-status', 'live', 'ok'));
  source.addEventListener('message', (event) => {
    const message = JSON.parse(event.data);
    if (state.paused) {
      state.held.push(message);
      if (state.held.length > MAX_SHOWN) state.held.shift();
      $('pause').textContent = `Resume (${state.held.length})`;
    } else {
      show([message]);
    }
  });
  source.addEventListener('error', (event) => {
    if (event.data !== undefined) {
      // The server's `event: error`: the stream is over for good.
      const { error } = JSON.parse(event.data);
      source.close();
      setStatus('tail-status', 'stopped', 'bad');
      showError(`${name}: ${error.message}`);
    } else if (source.readyState === EventSource.CONNECTING) {
      setStatus('tail-status', 'reconnecting…', 'wait');
    } else {
      setStatus('tail-status', 'disconnected', 'bad');
    }
  });
}

/** Appends messages to the list, keeping at most MAX_SHOWN. */
function show(messages) {
  const list = $('messages');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(...messages.map((m) => el('li', {}, messageCard(m))));
  while (list.children.length > MAX_SHOWN) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function messageCard(message) {
  const time = new Date(message.time);
  const tags = el('span', { class: 'tags' }, ...message.meta.tags.map((t) => el('span', { class: 'tag' }, t)));
  let data;
  if (message.meta.encoding) {
    data = el('pre', { class: 'data' }, el('span', { class: 'dim' }, `(${message.meta.encoding}) `), message.data);
  } else {
    const compact = JSON.stringify(message.data);
    const text = compact.length <= ONE_LINE ? compact : JSON.stringify(message.data, null, 2);
    data = el('pre', { class: 'data' }, text);
  }
  return el(
    'article',
    { class: 'message', 'data-seq': message.seq },
    el(
      'header',
      {},
      el('span', { class: 'seq' }, `#${message.seq}`),
      el('time', { datetime: message.time, title: message.time }, isNaN(time) ? message.time : time.toLocaleTimeString()),
      tags,
    ),
    data,
  );
}

function setPaused(paused) {
  state.paused = paused;
  $('pause').textContent = paused ? 'Resume' : 'Pause';
  $('pause').setAttribute('aria-pressed', String(paused));
  if (!paused && state.held.length > 0) {
    show(state.held);
    state.held = [];
  }
}

function splitTags(text) {
  return text.split(',').map((t) => t.trim()).filter((t) => t.length > 0);
}

// ---- Fetch by seq and the feed box.

async function fetchSeq(event) {
  event.preventDefault();
  const seq = $('fetch-seq').value.trim();
  const out = $('fetch-result');
  out.replaceChildren(el('p', { class: 'dim' }, 'fetching…'));
  try {
    const { message } = await api(`${poolPath(state.selected)}/messages/${encodeURIComponent(seq)}`);
    out.replaceChildren(messageCard(message));
  } catch (e) {
    out.replaceChildren(el('p', { class: 'result bad' }, `${e.kind}: ${e.message}`));
  }
}

async function feed(event) {
  event.preventDefault();
  const text = $('feed-data').value;
  const result = $('feed-result');
  if (text.trim() === '') {
    result.textContent = 'Nothing to append.';
    result.dataset.kind = 'bad';
    return;
  }
  // A JSON object is the message; anything else is sent as text.
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    data = undefined;
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) data = { text };
  const body = JSON.stringify({ data, tags: splitTags($('feed-tags').value) });
  try {
    const { message } = await api(`${poolPath(state.selected)}/append`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    result.textContent = `Appended as #${message.seq}.`;
    result.dataset.kind = 'ok';
    $('feed-data').value = '';
  } catch (e) {
    result.textContent = `${e.kind}: ${e.message}`;
    result.dataset.kind = 'bad';
  }
}

// ---- Start.

function start() {
  $('alert-close').addEventListener('click', () => {
    $('alert').hidden = true;
  });
  $('pause').addEventListener('click', () => setPaused(!state.paused));
  $('clear').addEventListener('click', () => $('messages').replaceChildren());
  // Enter in the filter fires `change`, which restarts the tail.
  $('filter-form').addEventListener('submit', (event) => event.preventDefault());
  $('tag-filter').addEventListener('change', () => {
    if (state.selected !== null) select(state.selected);
  });
  $('fetch-form').addEventListener('submit', fetchSeq);
  $('feed-form').addEventListener('submit', feed);
  $('feed-data').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) $('feed-form').requestSubmit();
  });
  refreshPools().then(() => {
    const name = decodeURIComponent(location.hash.slice(1));
    if (name) select(name);
  });
  setInterval(refreshPools, REFRESH_MS);
}

start();
