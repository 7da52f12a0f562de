// Chantier Connecté local dashboard: plain JavaScript, no build step, no third-party code.
// Views are chosen by the URL fragment (#/site/<site>, #/machine/<thing>, #/alerts, #/runs);
// every view re-renders from the API every REFRESH_MS while it is shown.
"use strict";

const REFRESH_MS = 5000;
const TOKEN_KEY = "chantier.apiToken";
const FIELDS = [
  { name: "temperature", label: "Temperature", unit: "°C" },
  { name: "humidity", label: "Humidity", unit: "%RH" },
  { name: "pressure", label: "Pressure", unit: "hPa" },
];
const SERIES_COLOURS = ["#1f6feb", "#8250df", "#1a7f37", "#bc4c00", "#0969da"];
const LEVEL_COLOURS = { critical: "#cf222e", warning: "#d4a72c", info: "#0969da", clear: "#57606a" };

let timer = null;
let generation = 0; // a view started later wins over a slow answer to an earlier one

// ---------- small DOM helpers (text only, never HTML from data) ----------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function time(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  const sameDay = new Date().toDateString() === d.toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

function ago(ms, now) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round(((now || Date.now()) - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function fixed(value, digits) {
  return typeof value === "number" ? value.toFixed(digits) : "—";
}

function badge(kind, text) {
  return h("span", { class: `badge badge-${kind || "none"}` }, text || kind || "—");
}

// ---------- token and API ----------
function takeTokenFromUrl() {
  // The demo prints a link with #...?token=...; keep it in this origin's storage and take it
  // out of the address bar so it does not end up in screenshots or history.
  const [path, query] = location.hash.split("?");
  const params = new URLSearchParams(query || "");
  const token = params.get("token");
  if (token) {
    localStorage.setItem(TOKEN_KEY, token);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", `${location.pathname}${path || "#/"}${rest ? "?" + rest : ""}`);
  }
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const token = localStorage.getItem(TOKEN_KEY) || "";
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = { message: text };
  }
  if (!response.ok) throw new ApiError(response.status, (data && data.message) || response.statusText);
  return data;
}

function showTokenForm(message) {
  stopRefresh();
  const view = document.getElementById("view");
  view.replaceChildren(document.getElementById("token-form").content.cloneNode(true));
  if (message) view.prepend(h("p", { class: "error" }, message));
  view.querySelector("form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, new FormData(event.target).get("token").trim());
    route();
  });
}

// ---------- routing and refresh ----------
function parseHash() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = (path || "/").split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query || "") };
}

function stopRefresh() {
  if (timer !== null) clearInterval(timer);
  timer = null;
}

function setLive(ok, text) {
  const live = document.getElementById("live");
  live.className = ok ? "live" : "live stale";
  live.textContent = text;
}

async function route() {
  takeTokenFromUrl();
  stopRefresh();
  if (!localStorage.getItem(TOKEN_KEY)) return showTokenForm();
  const { parts, params } = parseHash();
  const [name, arg] = parts;
  const render = {
    site: () => siteView(arg),
    machine: () => machineView(arg),
    alerts: () => alertsView(params),
    runs: () => runsView(arg),
  }[name] || (() => homeView());
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === (name || "site"));
  }
  const mine = ++generation;
  const tick = async () => {
    try {
      const node = await render();
      if (mine !== generation) return;
      const view = document.getElementById("view");
      const keep = view.querySelector("[data-keep]"); // forms the user is typing in survive
      if (!keep || !node.querySelector("[data-keep]")) view.replaceChildren(node);
      setLive(true, `live · ${new Date().toLocaleTimeString()}`);
    } catch (error) {
      if (mine !== generation) return;
      if (error instanceof ApiError && error.status === 401) {
        localStorage.removeItem(TOKEN_KEY);
        return showTokenForm("The token was refused: paste the one the stack printed.");
      }
      setLive(false, "not refreshed");
      const view = document.getElementById("view");
      if (!view.querySelector("[data-loaded]")) {
        view.replaceChildren(h("p", { class: "error" }, `Could not load: ${error.message}`));
      }
    }
  };
  await tick();
  if (mine === generation) timer = setInterval(tick, REFRESH_MS);
}

// ---------- views ----------
async function homeView() {
  const { items } = await api("GET", "/api/sites");
  if (items.length === 1) {
    location.replace(`#/site/${encodeURIComponent(items[0].site)}`);
    return h("p", { class: "muted" }, "Opening the site…");
  }
  if (!items.length) {
    return h("section", { "data-loaded": true }, h("h1", {}, "No machine yet"),
      h("p", { class: "muted" }, "Machines appear here once they have sent data (try chantier demo)."));
  }
  return h("section", { "data-loaded": true }, h("h1", {}, "Sites"),
    h("div", { class: "cards" }, items.map((s) =>
      h("a", { class: `card status-${s.status}`, href: `#/site/${encodeURIComponent(s.site)}`, "data-site": s.site },
        h("h2", {}, s.site),
        h("p", {}, `${s.machines} machines · ${s.openAlerts} open alerts`),
        badge(s.status)))));
}

function readingLine(sensor, r) {
  return h("li", {},
    h("span", { class: "sensor" }, sensor),
    ` ${fixed(r.temperature, 1)} °C`,
    r.humidity !== undefined ? ` · ${fixed(r.humidity, 0)} %RH` : "",
    r.pressure !== undefined ? ` · ${fixed(r.pressure, 0)} hPa` : "");
}

async function siteView(site) {
  if (!site) return homeView();
  const data = await api("GET", `/api/sites/${encodeURIComponent(site)}/machines`);
  const counts = {};
  for (const m of data.machines) counts[m.status] = (counts[m.status] || 0) + 1;
  return h("section", { "data-loaded": true },
    h("div", { class: "title" },
      h("h1", {}, `Site ${data.site}`), badge(data.status),
      h("span", { class: "muted" }, ["ok", "warning", "critical", "offline"]
        .filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(" · "))),
    h("div", { class: "cards" }, data.machines.map((m) =>
      h("a", { class: `card machine status-${m.status}`, href: `#/machine/${encodeURIComponent(m.thing)}`, "data-thing": m.thing, "data-status": m.status },
        h("div", { class: "card-head" }, h("h2", {}, m.thing), badge(m.status)),
        h("p", { class: "muted" }, m.equipment),
        h("ul", { class: "readings" }, Object.entries(m.readings).map(([s, r]) => readingLine(s, r))),
        h("p", { class: "muted small" }, `last reading ${time(m.lastReadingAt)} (${ago(m.lastReadingAt, data.now)})`),
        m.openAlerts.length
          ? h("ul", { class: "alerts-mini" }, m.openAlerts.map((a) =>
              h("li", {}, badge(a.severity), ` ${a.rule} on ${a.sensorId} (${a.state.toLowerCase()})`)))
          : h("p", { class: "small ok-text" }, "no open alert")))));
}

function lineChart(field, series, levels, range) {
  const W = 640, H = 180, L = 52, R = 10, T = 12, B = 24;
  const points = [];
  for (const readings of Object.values(series)) {
    for (const r of readings) if (typeof r[field.name] === "number") points.push(r[field.name]);
  }
  const wanted = levels.filter((l) => l.field === field.name && l.direction !== "range");
  if (!points.length) {
    return h("figure", { class: "chart", "data-field": field.name },
      h("figcaption", {}, field.label), h("p", { class: "muted" }, "no reading in this window"));
  }
  let lo = Math.min(...points), hi = Math.max(...points);
  // Levels stay visible when they are near the data; a level far away would flatten the curve.
  const span = Math.max(hi - lo, 1);
  for (const l of wanted) {
    if (l.value >= lo - span * 2 && l.value <= hi + span * 2) {
      lo = Math.min(lo, l.value);
      hi = Math.max(hi, l.value);
    }
  }
  const pad = Math.max((hi - lo) * 0.08, 0.5);
  lo -= pad;
  hi += pad;
  // The time axis starts at the first reading when the data is shorter than the window.
  let first = range.to;
  for (const readings of Object.values(series)) if (readings.length) first = Math.min(first, readings[0].ts);
  const start = Math.max(range.from, Math.min(first, range.to - 60000));
  const x = (ts) => L + ((ts - start) / Math.max(range.to - start, 1)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const parts = [
    svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "plot" }),
    svg("text", { x: L - 6, y: T + 4, class: "axis", "text-anchor": "end" }, hi.toFixed(1)),
    svg("text", { x: L - 6, y: H - B, class: "axis", "text-anchor": "end" }, lo.toFixed(1)),
    svg("text", { x: L, y: H - 6, class: "axis" }, time(start)),
    svg("text", { x: W - R, y: H - 6, class: "axis", "text-anchor": "end" }, time(range.to)),
  ];
  let lastLabel = -Infinity;
  for (const l of [...wanted].sort((a, b) => b.value - a.value)) {
    if (l.value < lo || l.value > hi) continue;
    const colour = LEVEL_COLOURS[l.severity] || "#57606a";
    parts.push(svg("line", { x1: L, x2: W - R, y1: y(l.value), y2: y(l.value), class: `level level-${l.severity}`, stroke: colour }));
    // Labels of close levels alternate sides so they never overlap.
    const crowded = y(l.value) - lastLabel < 12;
    parts.push(svg("text", { x: crowded ? L + 4 : W - R - 4, y: y(l.value) - 3, class: "axis level-label", "text-anchor": crowded ? "start" : "end", fill: colour }, `${l.severity} ${l.value}`));
    lastLabel = crowded ? lastLabel : y(l.value);
  }
  Object.entries(series).forEach(([sensor, readings], index) => {
    const path = readings.filter((r) => typeof r[field.name] === "number")
      .map((r, i) => `${i ? "L" : "M"}${x(r.ts).toFixed(1)},${y(r[field.name]).toFixed(1)}`).join("");
    if (path) parts.push(svg("path", { d: path, class: "series", stroke: SERIES_COLOURS[index % SERIES_COLOURS.length], "data-sensor": sensor }));
  });
  const legend = Object.keys(series).map((sensor, index) =>
    h("span", { class: "legend" }, h("i", { style: null, class: `swatch swatch-${index % SERIES_COLOURS.length}` }), sensor));
  return h("figure", { class: "chart", "data-field": field.name },
    h("figcaption", {}, `${field.label} (${field.unit})`, " ", legend),
    svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${field.label} over time` }, parts));
}

function alertActions(a, after) {
  const path = `/api/alerts/${[a.thing, a.sensorId, a.rule].map(encodeURIComponent).join("/")}`;
  const key = `${a.thing}/${a.sensorId}/${a.rule}`;
  const run = (button, action, body) => async () => {
    button.disabled = true;
    try {
      await api("POST", `${path}/${action}`, body);
      await after();
    } catch (error) {
      button.disabled = false;
      alert(`${action} failed: ${error.message}`);
    }
  };
  const ack = h("button", { type: "button", "data-action": "ack", "data-key": key, disabled: a.state !== "ACTIVE" && a.state !== "LATCHED" }, "Acknowledge");
  ack.addEventListener("click", run(ack, "ack", { note: "from the dashboard" }));
  const snooze = h("button", { type: "button", "data-action": "snooze", "data-key": key, class: "secondary" }, "Snooze 1 h");
  snooze.addEventListener("click", run(snooze, "snooze", { minutes: 60, note: "from the dashboard" }));
  return h("span", { class: "actions" }, ack, snooze);
}

async function machineView(thing) {
  const [m, readings] = await Promise.all([
    api("GET", `/api/things/${encodeURIComponent(thing)}`),
    api("GET", `/api/things/${encodeURIComponent(thing)}/readings?limit=2000`),
  ]);
  const levels = Object.values(m.levels).flat();
  const hl = m.health;
  const health = hl
    ? h("dl", { class: "health" },
        h("dt", {}, "queue depth"), h("dd", { "data-health": "queue" }, `${hl.queue ? hl.queue.depth : "—"} readings`),
        h("dt", {}, "dropped"), h("dd", { "data-health": "dropped" }, hl.dropped ? `${hl.dropped.sinceBoot} since boot, ${hl.dropped.total} total` : "—"),
        h("dt", {}, "clock"), h("dd", { "data-health": "clock" }, hl.clock ? `${hl.clock.synced ? "synced" : "NOT synced"} (${hl.clock.source})` : "—"),
        h("dt", {}, "agent"), h("dd", {}, `${hl.agentVersion || "—"}, up ${Math.round((hl.uptimeS || 0) / 60)} min`),
        h("dt", {}, "sensors"), h("dd", {}, (hl.sensors || []).map((s) => `${s.sensorId} ${s.status}${s.lastError ? " (" + s.lastError + ")" : ""}`).join(", ") || "—"),
        h("dt", {}, "reported"), h("dd", {}, `${time(hl.receivedAt)} (${ago(hl.receivedAt, m.now)})`))
    : h("p", { class: "muted" }, "No health message received yet.");
  const open = m.alerts.filter((a) => ["ACTIVE", "ACKNOWLEDGED", "LATCHED"].includes(a.state));
  return h("section", { "data-loaded": true },
    h("p", { class: "crumbs" }, h("a", { href: `#/site/${encodeURIComponent(m.site)}` }, `Site ${m.site}`), " › ", m.thing),
    h("div", { class: "title" }, h("h1", {}, m.thing), badge(m.status),
      h("span", { class: "muted" }, `${m.equipment} · last seen ${ago(m.lastSeen, m.now)}`)),
    h("div", { class: "grid" },
      h("div", { class: "charts" }, FIELDS.map((f) => lineChart(f, readings.series, levels, readings))),
      h("aside", {},
        h("h2", {}, "Health"), health,
        h("h2", {}, "Open alerts"),
        open.length
          ? h("ul", { class: "alerts-mini" }, open.map((a) => h("li", { "data-alert": `${a.thing}/${a.sensorId}/${a.rule}` },
              badge(a.severity), ` ${a.rule} on ${a.sensorId}: ${a.state.toLowerCase()} since ${time(a.since)} `, alertActions(a, route))))
          : h("p", { class: "ok-text" }, "none"))),
    h("h2", {}, "Alert history"),
    m.history.length
      ? h("table", { class: "table" },
          h("thead", {}, h("tr", {}, ["when", "alert", "from", "to", "severity", "value", "who", "note"].map((c) => h("th", {}, c)))),
          h("tbody", {}, m.history.map((t) => h("tr", {},
            h("td", {}, time(t.at)), h("td", {}, `${t.sensorId}/${t.rule}`), h("td", {}, t.from), h("td", {}, t.to),
            h("td", {}, badge(t.severity)), h("td", {}, fixed(t.value, 1)), h("td", {}, t.who), h("td", {}, t.note || t.reason)))))
      : h("p", { class: "muted" }, "No transition recorded."));
}

async function alertsView(params) {
  const site = params.get("site") || "";
  const severity = params.get("severity") || "";
  const query = new URLSearchParams();
  if (site) query.set("site", site);
  if (severity) query.set("severity", severity);
  const [{ items }, sites] = await Promise.all([
    api("GET", `/api/alerts?${query}`),
    api("GET", "/api/sites"),
  ]);
  const choose = (name, value) => {
    const next = new URLSearchParams({ site, severity });
    next.set(name, value);
    for (const [k, v] of [...next]) if (!v) next.delete(k);
    location.hash = `#/alerts?${next}`;
  };
  const siteSelect = h("select", { name: "site", "aria-label": "site" },
    h("option", { value: "" }, "all sites"),
    sites.items.map((s) => h("option", { value: s.site, selected: s.site === site }, s.site)));
  siteSelect.addEventListener("change", () => choose("site", siteSelect.value));
  const sevSelect = h("select", { name: "severity", "aria-label": "severity" },
    ["", "critical", "warning", "info"].map((s) => h("option", { value: s, selected: s === severity }, s || "all severities")));
  sevSelect.addEventListener("change", () => choose("severity", sevSelect.value));
  return h("section", { "data-loaded": true },
    h("div", { class: "title" }, h("h1", {}, "Open alerts"), h("span", { class: "filters" }, siteSelect, sevSelect)),
    items.length
      ? h("table", { class: "table", id: "alerts" },
          h("thead", {}, h("tr", {}, ["severity", "machine", "alert", "state", "since", "value", ""].map((c) => h("th", {}, c)))),
          h("tbody", {}, items.map((a) => h("tr", { "data-alert": `${a.thing}/${a.sensorId}/${a.rule}`, "data-state": a.state },
            h("td", {}, badge(a.severity)),
            h("td", {}, h("a", { href: `#/machine/${encodeURIComponent(a.thing)}` }, a.thing), h("div", { class: "muted small" }, a.site)),
            h("td", {}, `${a.rule} on ${a.sensorId}`, h("div", { class: "muted small" }, a.description)),
            h("td", {}, a.state),
            h("td", {}, time(a.since)),
            h("td", {}, fixed(a.value, 1)),
            h("td", {}, alertActions(a, route))))))
      : h("p", { class: "ok-text" }, "No open alert matches."));
}

function runRow(r) {
  const figures = `${r.devices} machines · ${r.duration} s · every ${r.interval} s`;
  return h("tr", { "data-run": r.id, "data-status": r.status },
    h("td", {}, h("a", { href: `#/runs/${r.id}` }, r.id.slice(0, 8))),
    h("td", {}, badge(r.status === "RUNNING" ? "running" : r.status === "COMPLETED" ? "ok" : "critical", r.status)),
    h("td", {}, r.username), h("td", {}, time(r.startedAt)),
    h("td", {}, r.finishedAt ? time(r.finishedAt) : `ends ${time(r.endsAt)}`),
    h("td", {}, figures), h("td", {}, (r.params && (r.params.site || r.params.profile)) || ""));
}

function runsTable(items) {
  return h("table", { class: "table" },
    h("thead", {}, h("tr", {}, ["run", "status", "user", "started", "finished", "figures", "site"].map((c) => h("th", {}, c)))),
    h("tbody", {}, items.map(runRow)));
}

async function runsView(id) {
  if (id) {
    const run = await api("GET", `/api/runs/${encodeURIComponent(id)}`);
    const data = await api("GET", `/api/sensors/data?runId=${encodeURIComponent(id)}&limit=1000`);
    const things = [...new Set(data.items.map((r) => r.thing))].sort();
    return h("section", { "data-loaded": true },
      h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " › ", run.id),
      h("div", { class: "title" }, h("h1", {}, `Run ${run.id.slice(0, 8)}`), badge(run.status === "RUNNING" ? "running" : "ok", run.status)),
      runsTable([run]),
      h("h2", {}, "Figures"),
      h("dl", { class: "health" },
        h("dt", {}, "readings"), h("dd", {}, `${data.count}${data.nextCursor ? "+" : ""}`),
        h("dt", {}, "machines"), h("dd", {}, things.length ? things.map((t) => h("a", { href: `#/machine/${encodeURIComponent(t)}` }, t, " ")) : "—"),
        h("dt", {}, "note"), h("dd", {}, run.note || "—")));
  }
  const [running, page] = await Promise.all([api("GET", "/api/runs/running"), api("GET", "/api/runs?limit=50")]);
  const past = page.items.filter((r) => r.status !== "RUNNING");
  return h("section", { "data-loaded": true },
    h("h1", {}, "Runs"),
    h("h2", {}, `Running (${running.items.length} of 5)`),
    running.items.length ? runsTable(running.items) : h("p", { class: "muted" }, "No run is running."),
    h("h2", {}, "Past runs"),
    past.length ? runsTable(past) : h("p", { class: "muted" }, "No finished run yet."));
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
