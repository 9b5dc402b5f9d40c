// coquin's dashboard: one page, Preact + htm (no build step), uPlot for the charts. Everything goes through
// /ui/api/<API route> with the page's X-Coquin-CSRF token (and the API token when coquin has one). Live:
// the journal's follow stream (GET /events?follow=1) drives the timeline, the charts and the links
// tables; one snapshot of proxies, partitions and scenarios is read every 2 s. The add-fault form is made
// from GET /types (each behavior's attribute schema), so a new behavior needs no code here.
import { h, render } from '/ui/assets/preact.js'
import { useEffect, useRef, useState } from '/ui/assets/hooks.js'
import htm from '/ui/assets/htm.js'

const html = htm.bind(h)
const CSRF = document.querySelector('meta[name="coquin-csrf"]').content
const VERSION = document.querySelector('meta[name="coquin-version"]').content
const WINDOW_S = 300          // seconds of history in the charts
const TIMELINE = 300          // events kept for the timeline

// ── The API ───────────────────────────────────────────────────────────────────────────────────────

let apiToken = sessionStorage.getItem('coquin-token') ?? ''
const listeners = new Set()
const notify = () => { for (const l of listeners) l() }

class ApiError extends Error {}

async function api(method, path, body) {
  const headers = { 'X-Coquin-CSRF': CSRF }
  if (apiToken) headers.Authorization = `Bearer ${apiToken}`
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const res = await fetch(`/ui/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  if (res.status === 401) { store.needToken = true; notify(); throw new ApiError('this coquin needs its API token') }
  const text = await res.text()
  let value
  try { value = text ? JSON.parse(text) : undefined } catch { value = text }
  if (!res.ok) throw new ApiError(typeof value === 'object' && value?.error ? value.error : `${res.status} ${text}`)
  return value
}

// ── The store: what the page shows ────────────────────────────────────────────────────────────────

const store = {
  proxies: [], types: [], partitions: [], scenarios: [], links: {}, events: [],
  series: {},                // proxy → { t: [], opened: [], bytes: [], errors: [] } per second
  needToken: false, error: '', connected: false,
}

function showError(err) { store.error = err.message; notify() }

async function refresh() {
  try {
    const [proxies, partitions, scenarios] = await Promise.all([api('GET', '/proxies'), api('GET', '/partitions'), api('GET', '/scenarios')])
    store.proxies = Object.values(proxies).sort((a, b) => a.name.localeCompare(b.name))
    store.partitions = partitions
    store.scenarios = scenarios
    store.needToken = false
    for (const p of store.proxies) if (!(p.name in store.links)) void refreshLinks(p.name)
    notify()
  } catch (err) {
    if (!(err instanceof ApiError)) showError(err)
  }
}

const linkTimers = new Map()
/** Links of one proxy, re-read at most twice a second while its links open and close. */
function refreshLinks(name) {
  if (linkTimers.has(name)) return
  linkTimers.set(name, setTimeout(async () => {
    linkTimers.delete(name)
    try { store.links[name] = await api('GET', `/proxies/${encodeURIComponent(name)}/links`); notify() } catch { /* gone */ }
  }, 500))
}

function bucket(proxy, now) {
  const s = store.series[proxy] ??= { t: [], opened: [], bytes: [], errors: [] }
  const sec = Math.floor(now / 1000)
  while (s.t.length > 0 && s.t[0] < sec - WINDOW_S) for (const k of ['t', 'opened', 'bytes', 'errors']) s[k].shift()
  if (s.t[s.t.length - 1] !== sec) { s.t.push(sec); s.opened.push(0); s.bytes.push(0); s.errors.push(0) }
  return { s, i: s.t.length - 1 }
}

function isError(e) {
  switch (e.type) {
    case 'link_close': return e.error !== undefined || e.reason === 'reset' || e.reason === 'upstream_unreachable'
    case 'http_request': return e.status >= 500 || e.status === 0
    case 'redis_command': case 'pg_query': return e.outcome !== 'ok'
    case 'http_fallback': case 'protocol_fallback': return true
    default: return false
  }
}

function onEvent(e) {
  if (e.type === 'dropped') return
  store.events.push(e)
  if (store.events.length > TIMELINE) store.events.splice(0, store.events.length - TIMELINE)
  const { s, i } = bucket(e.proxy, e.time)
  if (e.type === 'link_open') s.opened[i]++
  if (e.type === 'link_close') s.bytes[i] += e.bytes_upstream + e.bytes_downstream
  if (isError(e)) s.errors[i]++
  if (e.type === 'link_open' || e.type === 'link_close' || e.type === 'fault') refreshLinks(e.proxy)
}

/** Follows the journal; reconnects (from the last id seen) if the stream ends. */
async function follow() {
  let since = 0
  for (;;) {
    try {
      const headers = { 'X-Coquin-CSRF': CSRF }
      if (apiToken) headers.Authorization = `Bearer ${apiToken}`
      const res = await fetch(`/ui/api/events?follow=1${since ? `&since=${since}` : ''}`, { headers })
      if (res.status === 401) { store.needToken = true; notify(); await new Promise(r => setTimeout(r, 1000)); continue }
      if (!res.ok || !res.body) throw new Error(`events: ${res.status}`)
      store.connected = true
      notify()
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      let buf = ''
      let pending = false
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buf += value
        let nl
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl)
          buf = buf.slice(nl + 1)
          if (!line.trim()) continue
          const e = JSON.parse(line)
          if (typeof e.id === 'number') since = e.id
          onEvent(e)
          pending = true
        }
        if (pending) { pending = false; notify() }
      }
    } catch { /* reconnect below */ }
    store.connected = false
    notify()
    await new Promise(r => setTimeout(r, 1000))
  }
}

function useStore() {
  const [, setTick] = useState(0)
  useEffect(() => {
    let queued = false
    const l = () => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; setTick(t => t + 1) }) } }
    listeners.add(l)
    return () => listeners.delete(l)
  }, [])
  return store
}

/** Runs an action, then re-reads the snapshot; errors are shown in the banner. */
const act = fn => async ev => {
  ev?.preventDefault?.()
  try { await fn(ev); store.error = ''; await refresh() } catch (err) { showError(err) }
}

// ── Presets: the stories coquin exists for ────────────────────────────────────────────────────────

const PRESETS = [
  { label: 'load balancer idle reset', fault: { name: 'lb-idle-reset', type: 'idle_reset', stream: 'both', attributes: { idle: 5000, mode: 'rst' } } },
  { label: 'S3 bucket throttling', only: 'http', fault: { name: 's3-slowdown', type: 'http_throttle', attributes: { rate: 5, key: 'bucket' } } },
  { label: 'network blip (blackhole 10 s)', partition: p => ({ name: `blip-${p}`, proxies: [p], mode: 'blackhole', duration: '10s' }) },
  { label: 'slow database (latency + jitter)', fault: { name: 'slow-db', type: 'latency', stream: 'downstream', attributes: { latency: 200, jitter: 50 } } },
]

function applyPreset(proxy, preset) {
  return act(() => preset.partition
    ? api('POST', '/partitions', preset.partition(proxy.name))
    : api('POST', `/proxies/${encodeURIComponent(proxy.name)}/toxics`, preset.fault))
}

// ── Components ────────────────────────────────────────────────────────────────────────────────────

const fmtBytes = n => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`)
const fmtMs = ms => (ms >= 60_000 ? `${(ms / 60_000).toFixed(1)} min` : ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`)

/** The last WINDOW_S seconds of a proxy's series, one point per second (seconds without events are 0). */
function dense(s) {
  const now = Math.floor(Date.now() / 1000)
  const t = [], opened = [], bytes = [], errors = []
  const at = new Map((s?.t ?? []).map((sec, i) => [sec, i]))
  for (let sec = now - WINDOW_S + 1; sec <= now; sec++) {
    const i = at.get(sec)
    t.push(sec); opened.push(i === undefined ? 0 : s.opened[i]); bytes.push(i === undefined ? 0 : s.bytes[i]); errors.push(i === undefined ? 0 : s.errors[i])
  }
  return [t, opened, bytes, errors]
}

function Chart({ proxy }) {
  const ref = useRef(null)
  const plot = useRef(null)
  useEffect(() => {
    if (!ref.current || typeof uPlot === 'undefined') return
    plot.current = new uPlot({
      width: 420, height: 110, legend: { show: false }, cursor: { show: false },
      scales: { x: { time: true } },
      axes: [{ space: 60 }, { size: 36 }, { scale: 'bytes', side: 1, size: 56, values: (_u, v) => v.map(fmtBytes) }],
      series: [{}, { label: 'links opened/s', stroke: '#2563eb' }, { label: 'bytes/s', stroke: '#16a34a', scale: 'bytes' },
        { label: 'errors/s', stroke: '#dc2626' }],
    }, dense(store.series[proxy]), ref.current)
    return () => plot.current?.destroy()
  }, [])
  useEffect(() => { plot.current?.setData(dense(store.series[proxy])) })
  return html`<figure class="chart">
    <div ref=${ref} role="img" aria-label=${`Links opened, bytes and errors per second of ${proxy}, last ${WINDOW_S / 60} minutes`}></div>
    <figcaption><span class="k links">links opened/s</span> <span class="k bytes">bytes/s (of links closed)</span> <span class="k errors">errors/s</span></figcaption>
  </figure>`
}

function FaultRow({ proxy, fault }) {
  const [attrs, setAttrs] = useState(JSON.stringify(fault.attributes))
  useEffect(() => setAttrs(JSON.stringify(fault.attributes)), [JSON.stringify(fault.attributes)])
  const path = `/proxies/${encodeURIComponent(proxy.name)}/toxics/${encodeURIComponent(fault.name)}`
  return html`<tr>
    <td>${fault.name}</td><td>${fault.type}</td><td>${fault.stream}</td>
    <td><input type="number" min="0" max="1" step="0.05" value=${fault.toxicity} aria-label=${`Toxicity of ${fault.name}`}
      onChange=${act(ev => api('POST', path, { toxicity: Number(ev.target.value) }))} /></td>
    <td><input class="attrs" value=${attrs} aria-label=${`Attributes of ${fault.name}`} onInput=${ev => setAttrs(ev.target.value)} />
      <button onClick=${act(() => api('POST', path, { attributes: JSON.parse(attrs) }))}>Save attributes of ${fault.name}</button></td>
    <td><button class="danger" onClick=${act(() => api('DELETE', path))}>Remove ${fault.name}</button></td>
  </tr>`
}

/** One input per attribute, from its JSON Schema. */
function AttributeField({ name, schema, value, onValue }) {
  const id = `attr-${name}`
  const options = schema.anyOf?.every(s => s.const !== undefined) ? schema.anyOf.map(s => s.const) : undefined
  let input
  if (options) {
    input = html`<select id=${id} value=${value ?? schema.default} onChange=${ev => onValue(ev.target.value)}>
      ${options.map(o => html`<option value=${o}>${o}</option>`)}</select>`
  } else if (schema.type === 'integer' || schema.type === 'number') {
    input = html`<input id=${id} type="number" value=${value ?? schema.default ?? ''} min=${schema.minimum} max=${schema.maximum}
      onInput=${ev => onValue(ev.target.value === '' ? undefined : Number(ev.target.value))} />`
  } else if (schema.type === 'boolean') {
    input = html`<input id=${id} type="checkbox" checked=${value ?? schema.default ?? false} onChange=${ev => onValue(ev.target.checked)} />`
  } else if (schema.type === 'string') {
    input = html`<input id=${id} value=${value ?? schema.default ?? ''} onInput=${ev => onValue(ev.target.value)} />`
  } else {
    input = html`<input id=${id} class="attrs" placeholder=${JSON.stringify(schema.default ?? {})}
      onInput=${ev => { try { onValue(ev.target.value ? JSON.parse(ev.target.value) : undefined) } catch { /* typing */ } }} />`
  }
  return html`<label for=${id} title=${schema.description ?? ''}>${name}</label>${input}`
}

function AddFault({ proxy }) {
  const types = store.types.filter(t => !t.protocols || t.protocols.includes(proxy.protocol ?? 'tcp'))
  const [type, setType] = useState(types[0]?.type ?? 'latency')
  const [name, setName] = useState('')
  const [stream, setStream] = useState('downstream')
  const [toxicity, setToxicity] = useState(1)
  const [attrs, setAttrs] = useState({})
  const schema = store.types.find(t => t.type === type)?.attributes?.properties ?? {}
  const submit = act(async () => {
    const attributes = Object.fromEntries(Object.entries(attrs).filter(([, v]) => v !== undefined))
    await api('POST', `/proxies/${encodeURIComponent(proxy.name)}/toxics`, { ...(name ? { name } : {}), type, stream, toxicity, attributes })
    setName(''); setAttrs({})
  })
  return html`<form class="add" aria-label=${`Add a fault to ${proxy.name}`} onSubmit=${submit}>
    <label>type <select aria-label="Fault type" value=${type} onChange=${ev => { setType(ev.target.value); setAttrs({}) }}>
      ${types.map(t => html`<option value=${t.type}>${t.type}</option>`)}</select></label>
    <label>name <input aria-label="Fault name" value=${name} placeholder=${`${type}_${stream}`} onInput=${ev => setName(ev.target.value)} /></label>
    <label>stream <select aria-label="Stream" value=${stream} onChange=${ev => setStream(ev.target.value)}>
      ${['downstream', 'upstream', 'both'].map(s => html`<option value=${s}>${s}</option>`)}</select></label>
    <label>toxicity <input aria-label="New fault toxicity" type="number" min="0" max="1" step="0.05" value=${toxicity}
      onInput=${ev => setToxicity(Number(ev.target.value))} /></label>
    <fieldset><legend>attributes of ${type}</legend>
      ${Object.entries(schema).map(([k, s]) => html`<${AttributeField} key=${`${type}.${k}`} name=${k} schema=${s} value=${attrs[k]}
        onValue=${v => setAttrs(a => ({ ...a, [k]: v }))} />`)}
    </fieldset>
    <button type="submit">Add fault to ${proxy.name}</button>
  </form>`
}

function Links({ name }) {
  const links = store.links[name] ?? []
  if (links.length === 0) return html`<p class="muted">no open links</p>`
  return html`<table aria-label=${`Open links of ${name}`}><thead><tr><th>link</th><th>client</th><th>age</th><th>idle</th>
    <th>bytes up</th><th>bytes down</th><th>faults</th><th>state</th></tr></thead><tbody>
    ${links.map(l => html`<tr><td>${l.id}</td><td>${l.client}</td><td>${fmtMs(Date.now() - l.opened_at)}</td><td>${fmtMs(l.idle_ms)}</td>
      <td>${fmtBytes(l.bytes_upstream)}</td><td>${fmtBytes(l.bytes_downstream)}</td><td>${(l.toxics ?? []).join(', ')}</td><td>${l.state ?? ''}</td></tr>`)}
  </tbody></table>`
}

function Proxy({ proxy }) {
  const path = `/proxies/${encodeURIComponent(proxy.name)}`
  return html`<section class="proxy" role="region" aria-label=${proxy.name}>
    <header>
      <h2>${proxy.name}</h2>
      <span>${proxy.listen} → ${proxy.upstream}</span>
      <span class="tag">${proxy.protocol ?? 'tcp'}</span>
      <span class=${proxy.enabled ? 'tag ok' : 'tag off'}>${proxy.enabled ? 'enabled' : 'disabled'}</span>
      <button onClick=${act(() => api('POST', path, { enabled: !proxy.enabled }))}>${proxy.enabled ? 'Disable' : 'Enable'} ${proxy.name}</button>
    </header>
    <div class="row">
      <${Chart} proxy=${proxy.name} />
      <div class="presets" role="group" aria-label=${`Presets for ${proxy.name}`}>
        ${PRESETS.filter(p => !p.only || p.only === (proxy.protocol ?? 'tcp')).map(p =>
          html`<button onClick=${applyPreset(proxy, p)}>Preset: ${p.label}</button>`)}
      </div>
    </div>
    <table aria-label=${`Faults of ${proxy.name}`}><thead><tr><th>fault</th><th>type</th><th>stream</th><th>toxicity</th><th>attributes</th><th></th></tr></thead>
      <tbody>${proxy.toxics.map(f => html`<${FaultRow} key=${f.name} proxy=${proxy} fault=${f} />`)}</tbody></table>
    <${AddFault} proxy=${proxy} />
    <h3>Open links</h3>
    <${Links} name=${proxy.name} />
  </section>`
}

function Partitions() {
  const [name, setName] = useState('')
  const [proxies, setProxies] = useState('')
  const [mode, setMode] = useState('blackhole')
  const [duration, setDuration] = useState('')
  const cut = act(async () => {
    await api('POST', '/partitions', { name, proxies: proxies.split(',').map(s => s.trim()).filter(Boolean), mode, ...(duration ? { duration } : {}) })
    setName('')
  })
  return html`<section role="region" aria-label="Partitions">
    <h2>Partitions</h2>
    <ul>${store.partitions.map(p => html`<li><b>${p.name}</b> ${p.state === 'cut' ? 'cuts' : 'healed:'} ${p.proxies.join(', ')} (${p.mode})
      ${p.remaining_ms !== undefined ? html`, heals in ${fmtMs(p.remaining_ms)}` : ''}
      ${p.state === 'cut' ? html`<button onClick=${act(() => api('DELETE', `/partitions/${encodeURIComponent(p.name)}`))}>Heal ${p.name}</button>` : ''}</li>`)}</ul>
    <form aria-label="Cut a partition" onSubmit=${cut}>
      <label>name <input aria-label="Partition name" value=${name} onInput=${ev => setName(ev.target.value)} required /></label>
      <label>proxies <input aria-label="Partition proxies" value=${proxies} placeholder="api, db" onInput=${ev => setProxies(ev.target.value)} required /></label>
      <label>mode <select aria-label="Partition mode" value=${mode} onChange=${ev => setMode(ev.target.value)}>
        ${['blackhole', 'hold', 'reset', 'refuse'].map(m => html`<option value=${m}>${m}</option>`)}</select></label>
      <label>duration <input aria-label="Partition duration" value=${duration} placeholder="10s (empty: until healed)" onInput=${ev => setDuration(ev.target.value)} /></label>
      <button type="submit">Cut partition</button>
    </form>
  </section>`
}

function Scenarios() {
  const [spec, setSpec] = useState('')
  return html`<section role="region" aria-label="Scenarios">
    <h2>Scenarios</h2>
    <ul>${store.scenarios.map(s => html`<li><b>${s.name}</b> ${s.state}, ${fmtMs(s.elapsed_ms)} of ${fmtMs(s.duration_ms)}, ${s.log.length} steps done
      <progress aria-label=${`Progress of ${s.name}`} max=${s.duration_ms || 1} value=${Math.min(s.elapsed_ms, s.duration_ms || 1)}></progress>
      ${s.state === 'running' ? html`<button onClick=${act(() => api('DELETE', `/scenarios/${encodeURIComponent(s.id)}`))}>Stop ${s.name}</button>` : ''}</li>`)}</ul>
    <form aria-label="Start a scenario" onSubmit=${act(async () => { await api('POST', '/scenarios', JSON.parse(spec)); setSpec('') })}>
      <textarea aria-label="Scenario (JSON)" rows="3" value=${spec} placeholder='{"name": "flap", "steps": [{"at": 0, "proxy": {"name": "api", "enabled": false}}, {"at": "5s", "proxy": {"name": "api", "enabled": true}}]}'
        onInput=${ev => setSpec(ev.target.value)}></textarea>
      <button type="submit">Start scenario</button>
    </form>
  </section>`
}

function describe(e) {
  switch (e.type) {
    case 'link_open': return `client ${e.client}`
    case 'link_close': return `${e.reason}, ${fmtBytes(e.bytes_upstream)} up, ${fmtBytes(e.bytes_downstream)} down, ${fmtMs(e.duration_ms)}${e.error ? `, ${e.error}` : ''}`
    case 'fault': return `${e.toxic} (${e.toxic_type}) applies${e.request ? ` to request ${e.request}` : ''}`
    case 'fault_acted': return `${e.fault} ${e.action}${e.stream ? ` ${e.stream}` : ''}`
    case 'http_request': return `${e.method} ${e.path} → ${e.status} by ${e.source}, ${e.latency_ms} ms`
    case 'redis_command': return `${e.command}${e.key ? ` ${e.key}` : ''} → ${e.outcome} by ${e.source}, ${e.latency_ms} ms`
    case 'pg_query': return `${e.statement} → ${e.outcome} by ${e.source}, ${e.latency_ms} ms`
    default: return JSON.stringify(e)
  }
}

function Timeline() {
  const [proxy, setProxy] = useState('')
  const [type, setType] = useState('')
  const types = [...new Set(store.events.map(e => e.type))].sort()
  const shown = store.events.filter(e => (!proxy || e.proxy === proxy) && (!type || e.type === type)).slice(-100).reverse()
  return html`<section role="region" aria-label="Timeline">
    <h2>Timeline ${store.connected ? html`<span class="tag ok">live</span>` : html`<span class="tag off">reconnecting</span>`}</h2>
    <label>proxy <select aria-label="Filter by proxy" value=${proxy} onChange=${ev => setProxy(ev.target.value)}>
      <option value="">all</option>${store.proxies.map(p => html`<option value=${p.name}>${p.name}</option>`)}</select></label>
    <label>type <select aria-label="Filter by type" value=${type} onChange=${ev => setType(ev.target.value)}>
      <option value="">all</option>${types.map(t => html`<option value=${t}>${t}</option>`)}</select></label>
    <ol class="events" aria-label="Events">${shown.map(e => html`<li class=${isError(e) ? 'error' : ''}>
      <time>${new Date(e.time).toLocaleTimeString()}</time> <b>${e.proxy}</b> #${e.link} <i>${e.type}</i> ${describe(e)}</li>`)}</ol>
  </section>`
}

function TokenForm() {
  const [value, setValue] = useState('')
  return html`<form class="token" aria-label="API token" onSubmit=${ev => {
    ev.preventDefault(); apiToken = value; sessionStorage.setItem('coquin-token', value); store.needToken = false; void refresh(); void loadTypes()
  }}>
    <p>This coquin was started with <code>--token</code>: enter it to use the dashboard.</p>
    <input type="password" aria-label="Token" value=${value} onInput=${ev => setValue(ev.target.value)} />
    <button type="submit">Use token</button>
  </form>`
}

function App() {
  const s = useStore()
  return html`
    <header class="top"><h1>coquin</h1><span class="muted">${VERSION}</span>
      <button class="danger" onClick=${act(() => api('POST', '/reset'))}>Reset all faults</button></header>
    ${s.error ? html`<p class="banner" role="alert">${s.error}</p>` : ''}
    ${s.needToken ? html`<${TokenForm} />` : ''}
    <div class="grid">
      <div>${s.proxies.length === 0 ? html`<p class="muted">no proxies yet</p>` : s.proxies.map(p => html`<${Proxy} key=${p.name} proxy=${p} />`)}</div>
      <aside><${Partitions} /><${Scenarios} /><${Timeline} /></aside>
    </div>`
}

async function loadTypes() {
  try { store.types = await api('GET', '/types'); notify() } catch { /* token */ }
}

const root = document.getElementById('app')
root.textContent = ''                       // the "Loading…" placeholder
render(html`<${App} />`, root)
void loadTypes()
void refresh()
setInterval(refresh, 2000)   // also moves the charts' window along
void follow()
