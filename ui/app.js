// Thaw's dashboard: one page over the daemon's HTTP API (the same calls as the CLI), refreshed
// every second. Preact + htm, loaded as ES modules from the daemon (no build step, no CDN).

import { h, render } from 'preact';
import { useEffect, useState, useCallback } from 'preact/hooks';
import htm from 'htm';

const html = htm.bind(h);
const REFRESH_MS = 1000;
const TOKEN_KEY = 'thaw-token';

/** Colours of the timing parts, by key; parts not listed get grey. */
const PART_COLOURS = {
  checkMs: '#c084fc', prepareMs: '#a855f7', acquireMs: '#f59e0b', queueMs: '#ef4444', ipcOutMs: '#94a3b8', bootMs: '#0ea5e9', restoreMs: '#2563eb',
  initMs: '#14b8a6', grantMs: '#84cc16', populateMs: '#65a30d', handlerMs: '#16a34a', releaseMs: '#4d7c0f', hostMs: '#cbd5e1',
  ipcBackMs: '#64748b', platformMs: '#475569',
};

class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.code;
  }
}

async function api(method, path, { json, raw } = {}) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  let body;
  if (raw !== undefined) {
    headers['content-type'] = 'application/octet-stream';
    body = raw;
  } else if (json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(json);
  }
  const res = await fetch(path, { method, headers, body });
  if (res.status === 204) return undefined;
  const data = await res.json().catch(() => undefined);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

const mib = (bytes) => (bytes === undefined ? '' : (bytes / 2 ** 20).toFixed(1));
const ms = (v) => (v === undefined ? '' : v.toFixed(2));
const short = (id) => (id ? String(id).slice(0, 12) : '');

function useDaemon() {
  const [state, setState] = useState({ loaded: false });
  const [error, setError] = useState(null);
  const refresh = useCallback(async () => {
    try {
      const [health, functions, sandboxes, snapshots, invocations] = await Promise.all([
        api('GET', '/health'), api('GET', '/v1/functions'), api('GET', '/v1/sandboxes'), api('GET', '/v1/snapshots'), api('GET', '/v1/invocations?limit=30'),
      ]);
      setState((s) => ({ ...s, loaded: true, health, functions, sandboxes, snapshots, invocations }));
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, []);
  useEffect(() => {
    refresh();
    api('GET', '/v1/strategies').then((strategies) => setState((s) => ({ ...s, strategies })), () => {});
    const timer = setInterval(refresh, REFRESH_MS);
    return () => clearInterval(timer);
  }, [refresh]);
  return { state, error, refresh };
}

function TokenForm({ onSaved }) {
  const [value, setValue] = useState('');
  return html`<form class="token" onSubmit=${(e) => { e.preventDefault(); sessionStorage.setItem(TOKEN_KEY, value); onSaved(); }}>
    <p>This daemon needs its bearer token (<code>--token</code> or <code>THAW_TOKEN</code>). It is kept in this tab only.</p>
    <input type="password" name="token" value=${value} onInput=${(e) => setValue(e.target.value)} placeholder="token" />
    <button type="submit">Use token</button>
  </form>`;
}

function Functions({ functions, sandboxes, onChange, say }) {
  const [inputs, setInputs] = useState({});
  const [modes, setModes] = useState({});
  const invoke = async (name) => {
    const mode = modes[name] ?? 'auto';
    say(`invoking ${name} (${mode}) ...`);
    try {
      const r = await api('POST', `/v1/functions/${encodeURIComponent(name)}/invocations?mode=${mode}&keep=true`, { raw: new TextEncoder().encode(inputs[name] ?? '') });
      say(`${name}: ${r.output ?? `(${r.outputBase64?.length ?? 0} base64 chars)`} (${ms(r.timings.totalMs)} ms, sandbox ${r.sandboxId})`, 'ok');
    } catch (e) {
      say(`${name}: ${e.code ?? ''} ${e.message}`, 'bad');
    }
    onChange();
  };
  const snapshot = async (name) => {
    const idle = sandboxes.find((s) => s.function === name && s.state === 'idle');
    if (!idle) return say(`${name}: no idle sandbox to snapshot (invoke it first; sandboxes are kept)`, 'bad');
    try {
      const snap = await api('POST', '/v1/snapshots', { json: { sandboxId: idle.id } });
      say(`${name}: snapshot ${snap.id} taken from ${idle.id}`, 'ok');
    } catch (e) {
      say(`${name}: ${e.code ?? ''} ${e.message}`, 'bad');
    }
    onChange();
  };
  return html`<section id="functions"><h2>Functions (${functions.length})</h2>
    <table><thead><tr><th>name</th><th>runtime</th><th>memory MiB</th><th>digest</th><th>input</th><th>mode</th><th></th></tr></thead>
    <tbody>${functions.map((f) => html`<tr data-function=${f.name}>
      <td>${f.name}</td><td>${f.runtime}</td><td class="num">${f.memoryMiB}</td><td class="muted">${short(f.digest)}</td>
      <td><input name="input" size="10" value=${inputs[f.name] ?? ''} onInput=${(e) => setInputs({ ...inputs, [f.name]: e.target.value })} /></td>
      <td><select name="mode" value=${modes[f.name] ?? 'auto'} onChange=${(e) => setModes({ ...modes, [f.name]: e.target.value })}>
        ${['auto', 'cold', 'warm', 'snapshot'].map((m) => html`<option value=${m}>${m}</option>`)}
      </select></td>
      <td><button name="invoke" onClick=${() => invoke(f.name)}>Invoke</button> <button name="snapshot" onClick=${() => snapshot(f.name)}>Snapshot</button></td>
    </tr>`)}</tbody></table></section>`;
}

function Sandboxes({ sandboxes }) {
  return html`<section id="sandboxes"><h2>Sandboxes (${sandboxes.length})</h2>
    <table><thead><tr><th>id</th><th>function</th><th>state</th><th>origin</th><th>invocations</th><th>declared MiB</th><th>granted MiB</th><th>resident MiB</th><th>host pid</th></tr></thead>
    <tbody>${sandboxes.map((s) => html`<tr data-sandbox=${s.id}>
      <td>${s.id}</td><td>${s.function}</td><td class=${s.state === 'busy' ? 'bad' : 'ok'}>${s.state}</td>
      <td>${s.origin.kind === 'cold' ? 'cold' : `${short(s.origin.snapshotId)} (${s.origin.strategy})`}</td>
      <td class="num">${s.invocations}</td>
      <td class="num">${mib(s.memory?.declaredBytes ?? s.memoryBytes)}</td><td class="num">${mib(s.memory?.grantedBytes)}</td>
      <td class="num">${mib(s.memory?.residentBytes)}</td><td class="num">${s.hostPid}</td>
    </tr>`)}</tbody></table></section>`;
}

function Snapshots({ snapshots }) {
  return html`<section id="snapshots"><h2>Snapshots (${snapshots.length})</h2>
    <table><thead><tr><th>id</th><th>function</th><th>kind</th><th>memory MiB</th><th>disk MiB</th><th>artefacts (tier, MiB)</th></tr></thead>
    <tbody>${snapshots.map((s) => html`<tr data-snapshot=${s.id}>
      <td>${s.id}</td><td>${s.function}${s.current ? '' : html` <span class="muted">(old version)</span>`}</td><td>${s.kind}</td>
      <td class="num">${mib(s.memoryBytes)}</td><td class="num">${mib(s.diskBytes)}</td>
      <td>${s.artefacts.map((a) => html`<div>${a.name} <span class="muted">${a.tier}, ${mib(a.bytes)}</span></div>`)}</td>
    </tr>`)}</tbody></table></section>`;
}

function Waterfall({ timings }) {
  const total = timings.totalMs || 1;
  const parts = Object.entries(timings).filter(([k, v]) => k !== 'totalMs' && v > 0);
  return html`<div class="waterfall" title=${parts.map(([k, v]) => `${k} ${ms(v)}`).join(', ')}>
    ${parts.map(([k, v]) => html`<span data-part=${k} style=${`width:${(100 * v) / total}%;background:${PART_COLOURS[k] ?? '#d0d5dd'}`}></span>`)}
  </div>`;
}

function Invocations({ invocations }) {
  const keys = [...new Set(invocations.flatMap((i) => Object.keys(i.timings ?? {}).filter((k) => k !== 'totalMs')))];
  return html`<section id="invocations"><h2>Recent invocations</h2>
    <div class="legend">${keys.map((k) => html`<span><i style=${`background:${PART_COLOURS[k] ?? '#d0d5dd'}`}></i>${k.replace(/Ms$/, '')}</span>`)}</div>
    <table><thead><tr><th>time</th><th>function</th><th>mode</th><th>start</th><th>strategy</th><th>outcome</th><th>total ms</th><th>where the time went</th><th>trace</th></tr></thead>
    <tbody>${invocations.map((i) => html`<tr data-invocation=${i.seq}>
      <td class="muted">${i.time.slice(11, 23)}</td><td>${i.function}</td><td>${i.mode}</td><td>${i.start ?? ''}</td>
      <td title=${i.strategyReason ?? ''}>${i.strategy ?? ''}</td>
      <td class=${i.outcome === 'ok' ? 'ok' : 'bad'} title=${i.message ?? ''}>${i.outcome}</td>
      <td class="num">${ms(i.timings?.totalMs)}</td>
      <td>${i.timings ? html`<${Waterfall} timings=${i.timings} />` : html`<span class="muted">${i.message ?? ''}</span>`}</td>
      <td class="muted" title=${i.traceId ?? ''}>${i.traceId ? i.traceId.slice(0, 8) : ''}</td>
    </tr>`)}</tbody></table></section>`;
}

function Strategies({ strategies }) {
  if (!strategies) return null;
  return html`<section id="strategies"><h2>Restore strategies on this host</h2>
    <table><thead><tr><th>id</th><th>runs here</th><th>verifies</th><th>description</th></tr></thead>
    <tbody>${strategies.map((s) => html`<tr>
      <td>${s.id}</td><td class=${s.available ? 'ok' : 'bad'}>${s.available ? 'yes' : `no: ${s.reason ?? ''}`}</td>
      <td title=${s.verifiesHow}>${s.verifies}</td><td class="muted" title=${s.description}>${s.description.slice(0, 90)}</td>
    </tr>`)}</tbody></table></section>`;
}

const REPORTS_REFRESH_MS = 10_000;
const kib = (bytes) => (bytes / 1024).toFixed(0);

/**
 * The harness's experiment reports in the daemon's results directory. A link opens the report
 * (served as a sandboxed document); with a token, a plain link cannot send it, so the report is
 * fetched with the token and shown below in a sandboxed frame (no scripts, its own origin).
 */
function Reports() {
  const [list, setList] = useState(null);
  const [open, setOpen] = useState(null);
  useEffect(() => {
    const load = () => api('GET', '/v1/reports').then(setList, () => {});
    load();
    const timer = setInterval(load, REPORTS_REFRESH_MS);
    return () => clearInterval(timer);
  }, []);
  if (!list) return null;
  const show = async (e, r) => {
    if (!sessionStorage.getItem(TOKEN_KEY)) return; // the link opens it
    e.preventDefault();
    const res = await fetch(`/v1/reports/${r.path}`, { headers: { authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` } });
    setOpen({ path: r.path, html: res.ok ? await res.text() : `<p>HTTP ${res.status}</p>` });
  };
  return html`<section id="reports"><h2>Experiment reports (${list.reports.length})</h2>
    <p class="muted">${list.resultsDir ? html`from <code>${list.resultsDir}</code> (thaw bench, thaw replay)` : 'no results directory'}</p>
    <table><thead><tr><th>kind</th><th>run</th><th>written</th><th class="num">KiB</th><th></th></tr></thead>
    <tbody>${list.reports.map((r) => html`<tr>
      <td>${r.kind}</td><td>${r.run}</td><td>${r.modifiedAt.replace('T', ' ').slice(0, 19)}</td><td class="num">${kib(r.sizeBytes)}</td>
      <td><a class="report-link" href=${`/v1/reports/${r.path}`} target="_blank" rel="noopener noreferrer" onClick=${(e) => show(e, r)}>open report</a></td>
    </tr>`)}</tbody></table>
    ${open && html`<div class="report-view"><p>${open.path} <button onClick=${() => setOpen(null)}>close</button></p>
      <iframe sandbox="" srcdoc=${open.html} title=${open.path}></iframe></div>`}
  </section>`;
}

function App() {
  const { state, error, refresh } = useDaemon();
  const [message, setMessage] = useState(null);
  const say = (text, kind = 'muted') => setMessage({ text, kind });
  if (error?.status === 401) return html`<${TokenForm} onSaved=${refresh} />`;
  if (!state.loaded) return html`<div class="message">${error ? `cannot reach the daemon: ${error.message}` : 'Loading...'}</div>`;
  const pool = state.health?.pool;
  return html`<header>
      <h1>Thaw</h1>
      <span class="meta">${pool ? `hosts: ${pool.live} live, ${pool.spares} spare, ${Object.values(pool.prepared).reduce((a, b) => a + b, 0)} prepared` : ''}</span>
      <span class="meta">${error ? html`<span class="bad">refresh failed: ${error.message}</span>` : 'live'}</span>
      <a href="/openapi.json">API</a> <a href="/metrics">metrics</a>
    </header>
    ${message && html`<div class=${`message ${message.kind}`} id="message">${message.text}</div>`}
    <main>
      <${Functions} functions=${state.functions} sandboxes=${state.sandboxes} onChange=${refresh} say=${say} />
      <${Sandboxes} sandboxes=${state.sandboxes} />
      <${Snapshots} snapshots=${state.snapshots} />
      <${Invocations} invocations=${state.invocations} />
      <${Strategies} strategies=${state.strategies} />
      <${Reports} />
    </main>`;
}

const root = document.getElementById('app');
root.textContent = ''; // the "Loading..." placeholder shown until this module runs
render(html`<${App} />`, root);
