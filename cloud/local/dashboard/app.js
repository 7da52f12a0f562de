// Chantier Connecté local dashboard: plain JavaScript, no build step. Charts are drawn by uPlot
// (MIT), which `make install` puts beside this file from the npm registry.
// Views are chosen by the URL fragment (#/site/<site>, #/machine/<thing>, #/alerts, #/runs);
// every view re-renders from the API every REFRESH_MS while it is shown; charts are updated in
// place, so hovering and a zoomed range survive the refresh.
"use strict";

const REFRESH_MS = 5000;
const TOKEN_KEY = "chantier.apiToken";
const FIELDS = [
  { name: "temperature", label: "Temperature", unit: "°C", digits: 1 },
  { name: "humidity", label: "Humidity", unit: "%RH", digits: 0 },
  { name: "pressure", label: "Pressure", unit: "hPa", digits: 1 },
  { name: "dewPointMargin", label: "Dew-point margin (air above its dew point)", unit: "°C", digits: 1 },
];
const SERIES_COLOURS = ["#1f6feb", "#8250df", "#1a7f37", "#bc4c00", "#0969da"];
const LEVEL_COLOURS = { critical: "#cf222e", warning: "#b08800", info: "#0969da", clear: "#57606a" };
const OPEN_STATES = ["ACTIVE", "ACKNOWLEDGED", "LATCHED"];

let timer = null;
let generation = 0; // a view started later wins over a slow answer to an earlier one
const charts = new Map(); // `${thing}|${field}` -> { plot, node }
let zoom = null; // { thing, min, max } in seconds, kept across refreshes until double-click

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

// A value in the colour of the level it stands at (ok when inside every threshold).
function levelled(reading, field, digits, unit) {
  const level = (reading.levels && reading.levels[field]) || "ok";
  return h("span", { class: `v lvl-${level}`, "data-field": field, "data-level": level, title: level === "ok" ? "within every level" : `at the ${level} level` },
    `${fixed(reading[field], digits)} ${unit}`);
}

function toast(text) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.classList.add("shown");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.remove("shown"), 6000);
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
  const dialog = document.getElementById("ack-dialog");
  if (dialog.open && dialog.dataset.route !== location.hash.split("?")[0]) dialog.close();
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
  if (name !== "machine") dropCharts();
  const mine = ++generation;
  const tick = async () => {
    try {
      const node = await render();
      if (mine !== generation) return;
      const view = document.getElementById("view");
      view.replaceChildren(node);
      for (const { plot, node: figure } of charts.values()) fitChart(plot, figure);
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
  return h("li", { "data-sensor": sensor },
    h("span", { class: "sensor" }, sensor), " ",
    levelled(r, "temperature", 1, "°C"),
    r.humidity !== undefined ? [" · ", levelled(r, "humidity", 0, "%RH")] : "",
    r.dewPointMargin !== undefined ? [" · dew point ", levelled(r, "dewPointMargin", 1, "°C below")] : "",
    r.pressure !== undefined ? [" · ", levelled(r, "pressure", 0, "hPa")] : "");
}

function pendingLine(p, now) {
  const left = p.pendingSince ? Math.max(0, Math.round(p.forS - (now - p.pendingSince) / 1000)) : null;
  return h("li", { class: "pending", "data-pending": `${p.thing}/${p.sensorId}/${p.rule}` },
    badge("pending"), ` ${p.rule} on ${p.sensorId}: level crossed ${ago(p.pendingSince, now)}`,
    left !== null ? `, alert in ${left} s if it holds` : "");
}

async function siteView(site) {
  if (!site) return homeView();
  const data = await api("GET", `/api/sites/${encodeURIComponent(site)}/machines`);
  const counts = {};
  for (const m of data.machines) counts[m.status] = (counts[m.status] || 0) + 1;
  return h("section", { "data-loaded": true },
    h("div", { class: "title" },
      h("h1", {}, `Site ${data.site}`), badge(data.status),
      h("span", { class: "muted" }, ["critical", "offline", "warning", "pending", "ok"]
        .filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(" · "))),
    h("div", { class: "cards" }, data.machines.map((m) =>
      h("a", { class: `card machine status-${m.status}`, href: `#/machine/${encodeURIComponent(m.thing)}`, "data-thing": m.thing, "data-status": m.status },
        h("div", { class: "card-head" }, h("h2", {}, m.thing), badge(m.status)),
        h("p", { class: "muted" }, m.equipment),
        h("ul", { class: "readings" }, Object.entries(m.readings).map(([s, r]) => readingLine(s, r))),
        h("p", { class: "muted small" }, `last reading ${time(m.lastReadingAt)} (${ago(m.lastReadingAt, data.now)})`),
        m.openAlerts.length || m.pending.length
          ? h("ul", { class: "alerts-mini" },
              m.openAlerts.map((a) => h("li", {}, badge(a.severity), ` ${a.rule} on ${a.sensorId} (${a.state.toLowerCase()})`)),
              m.pending.map((p) => pendingLine(p, data.now)))
          : h("p", { class: "small ok-text" }, "no open alert")))));
}

// ---------- charts (uPlot) ----------
function dropCharts() {
  for (const { plot } of charts.values()) plot.destroy();
  charts.clear();
  zoom = null;
}

function alignedSeries(series, field) {
  // uPlot wants one x array and one y array per series, aligned: missing points are null.
  const sensors = Object.keys(series).filter((s) => series[s].some((r) => typeof r[field] === "number"));
  const times = [...new Set(sensors.flatMap((s) => series[s].map((r) => r.ts)))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const ys = sensors.map((s) => {
    const column = new Array(times.length).fill(null);
    for (const r of series[s]) if (typeof r[field] === "number") column[index.get(r.ts)] = r[field];
    return column;
  });
  return { sensors, data: [times.map((t) => t / 1000), ...ys] };
}

function levelsPlugin(levels) {
  return {
    hooks: {
      draw: [(u) => {
        const { ctx, bbox } = u;
        ctx.save();
        ctx.setLineDash([6, 4]);
        ctx.lineWidth = 1.2 * devicePixelRatio;
        ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
        let lastLabel = -Infinity;
        const sorted = [...levels].sort((a, b) => b.value - a.value);
        for (const level of sorted) {
          const y = u.valToPos(level.value, "y", true);
          if (y < bbox.top || y > bbox.top + bbox.height) continue;
          ctx.strokeStyle = ctx.fillStyle = LEVEL_COLOURS[level.severity] || "#57606a";
          ctx.beginPath();
          ctx.moveTo(bbox.left, y);
          ctx.lineTo(bbox.left + bbox.width, y);
          ctx.stroke();
          // Labels of close levels alternate sides so they never overlap.
          const crowded = y - lastLabel < 13 * devicePixelRatio;
          const text = `${level.severity} ${level.value}`;
          const x = crowded ? bbox.left + bbox.width - ctx.measureText(text).width - 4 * devicePixelRatio : bbox.left + 4 * devicePixelRatio;
          ctx.fillText(text, x, y - 3 * devicePixelRatio);
          if (!crowded) lastLabel = y;
        }
        ctx.restore();
      }],
    },
  };
}

function yRange(levels) {
  // Levels near the data stay in view; one far away would flatten the curve.
  return (u, lo, hi) => {
    if (lo === null || hi === null) return [0, 1];
    const span = Math.max(hi - lo, 1);
    for (const l of levels) {
      if (l.value >= lo - span * 2 && l.value <= hi + span * 2) {
        lo = Math.min(lo, l.value);
        hi = Math.max(hi, l.value);
      }
    }
    const pad = Math.max((hi - lo) * 0.08, 0.5);
    return [lo - pad, hi + pad];
  };
}

function fitChart(plot, figure) {
  const column = figure.parentElement || figure;
  const width = Math.max(220, Math.floor(column.clientWidth - 22));
  if (Math.abs(plot.width - width) > 2) plot.setSize({ width, height: plot.height });
}

let syncing = false;
function onZoom(thing) {
  return (u, key) => {
    if (key !== "x" || syncing) return;
    const { min, max } = u.scales.x;
    const full = u.data[0].length ? [u.data[0][0], u.data[0][u.data[0].length - 1]] : [min, max];
    zoom = min > full[0] + 0.5 || max < full[1] - 0.5 ? { thing, min, max } : null;
    const figure = u.root.closest("figure");
    if (figure) {
      figure.dataset.from = String(Math.round(min * 1000));
      figure.dataset.to = String(Math.round(max * 1000));
      figure.dataset.zoomed = zoom ? "true" : "false";
    }
    syncing = true;
    try {
      for (const [chartKey, other] of charts) {
        if (other.plot !== u && chartKey.startsWith(`${thing}|`)) other.plot.setScale("x", { min, max });
      }
    } finally {
      syncing = false;
    }
  };
}

function chartFigure(thing, field, series, levels) {
  const wanted = levels.filter((l) => l.field === field.name && l.direction !== "range");
  const { sensors, data } = alignedSeries(series, field.name);
  const key = `${thing}|${field.name}`;
  let entry = charts.get(key);
  if (!sensors.length) {
    if (entry) { entry.plot.destroy(); charts.delete(key); }
    return h("figure", { class: "chart", "data-field": field.name },
      h("figcaption", {}, `${field.label} (${field.unit})`), h("p", { class: "muted" }, "no reading in this window"));
  }
  const same = entry && entry.sensors.join() === sensors.join() && entry.levels === JSON.stringify(wanted);
  if (same) {
    entry.plot.setData(data, zoom === null);
    if (zoom && zoom.thing === thing) entry.plot.setScale("x", { min: zoom.min, max: zoom.max });
    return entry.node;
  }
  if (entry) entry.plot.destroy();
  if (typeof window.uPlot !== "function") {
    return h("figure", { class: "chart", "data-field": field.name },
      h("figcaption", {}, field.label),
      h("p", { class: "error" }, "Charts need uPlot, which `make install` puts in the dashboard's folder."));
  }
  const node = h("figure", { class: "chart", "data-field": field.name, "data-sensors": sensors.join(" "),
    "data-levels": wanted.map((l) => `${l.severity} ${l.value}`).join(", ") },
    h("figcaption", {}, `${field.label} (${field.unit})`,
      h("span", { class: "hint" }, "drag to zoom · double-click for all")));
  const plot = new window.uPlot({
    width: 600,
    height: 190,
    cursor: { drag: { x: true, y: false }, sync: { key: `machine-${thing}` } },
    scales: { x: { time: true }, y: { range: yRange(wanted) } },
    legend: { live: true },
    axes: [{ stroke: "#57606a", grid: { stroke: "#eaeef2" } },
      { stroke: "#57606a", grid: { stroke: "#eaeef2" }, size: 48 }],
    series: [
      { label: "time", value: (u, v) => (v === null ? "—" : new Date(v * 1000).toLocaleString()) },
      ...sensors.map((sensor, i) => ({
        label: sensor,
        stroke: SERIES_COLOURS[i % SERIES_COLOURS.length],
        width: 1.8,
        spanGaps: true,
        value: (u, v) => (v === null || v === undefined ? "—" : `${v.toFixed(field.digits)} ${field.unit}`),
      })),
    ],
    hooks: { setScale: [onZoom(thing)] },
    plugins: [levelsPlugin(wanted)],
  }, data, node);
  entry = { plot, node, sensors, levels: JSON.stringify(wanted) };
  charts.set(key, entry);
  if (zoom && zoom.thing === thing) plot.setScale("x", { min: zoom.min, max: zoom.max });
  return node;
}

// ---------- alerts: acknowledge with a note, after a confirmation ----------
function alertValue(a) {
  const fired = a.firedValue !== null && a.firedValue !== undefined && a.state !== "ACTIVE";
  return fired
    ? h("span", { "data-fired": fixed(a.firedValue, 1) }, h("strong", {}, fixed(a.firedValue, 1)),
        h("span", { class: "muted small" }, ` fired ${time(a.firedAt)} · now ${fixed(a.value, 1)}`))
    : h("span", {}, fixed(a.value, 1));
}

function askAcknowledge(a, after) {
  const dialog = document.getElementById("ack-dialog");
  const form = document.getElementById("ack-form");
  const key = `${a.thing}/${a.sensorId}/${a.rule}`;
  document.getElementById("ack-what").textContent =
    `${key} — ${a.severity}, ${a.state.toLowerCase()} since ${time(a.since)}` +
    (a.firedValue !== null && a.firedValue !== undefined ? `, fired at ${fixed(a.firedValue, 1)}` : "");
  form.elements.note.value = "";
  dialog.dataset.key = key;
  dialog.dataset.route = location.hash.split("?")[0]; // leaving the view closes it
  const confirm = document.getElementById("ack-confirm");
  confirm.disabled = false;
  const onSubmit = async (event) => {
    event.preventDefault();
    confirm.disabled = true;
    const note = form.elements.note.value.trim();
    const path = `/api/alerts/${[a.thing, a.sensorId, a.rule].map(encodeURIComponent).join("/")}/ack`;
    try {
      const result = await api("POST", path, { note });
      dialog.close();
      const who = result.transition ? result.transition.who : "you";
      toast(`Acknowledged ${key} as ${who}${note ? ` — “${note}”` : ""}`);
      await after();
    } catch (error) {
      confirm.disabled = false;
      toast(`Could not acknowledge ${key}: ${error.message}`);
    }
  };
  form.onsubmit = onSubmit;
  document.getElementById("ack-cancel").onclick = () => dialog.close();
  dialog.showModal();
  form.elements.note.focus();
}

function alertActions(a, after) {
  const path = `/api/alerts/${[a.thing, a.sensorId, a.rule].map(encodeURIComponent).join("/")}`;
  const key = `${a.thing}/${a.sensorId}/${a.rule}`;
  const ack = h("button", { type: "button", "data-action": "ack", "data-key": key, disabled: a.state !== "ACTIVE" && a.state !== "LATCHED" }, "Acknowledge…");
  ack.addEventListener("click", () => askAcknowledge(a, after));
  const snooze = h("button", { type: "button", "data-action": "snooze", "data-key": key, class: "secondary" }, "Snooze 1 h");
  snooze.addEventListener("click", async () => {
    snooze.disabled = true;
    try {
      await api("POST", `${path}/snooze`, { minutes: 60, note: "snoozed from the dashboard" });
      toast(`Snoozed ${key} for an hour`);
      await after();
    } catch (error) {
      snooze.disabled = false;
      toast(`Could not snooze ${key}: ${error.message}`);
    }
  });
  return h("span", { class: "actions" }, ack, snooze);
}

async function machineView(thing) {
  if (zoom && zoom.thing !== thing) zoom = null;
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
  const open = m.alerts.filter((a) => OPEN_STATES.includes(a.state));
  return h("section", { "data-loaded": true },
    h("p", { class: "crumbs" }, h("a", { href: `#/site/${encodeURIComponent(m.site)}` }, `Site ${m.site}`), " › ", m.thing),
    h("div", { class: "title" }, h("h1", {}, m.thing), badge(m.status),
      h("span", { class: "muted" }, `${m.equipment} · last seen ${ago(m.lastSeen, m.now)}`)),
    h("ul", { class: "readings now" }, Object.entries(m.readings).map(([s, r]) => readingLine(s, r))),
    h("div", { class: "grid" },
      h("div", { class: "charts" }, FIELDS.map((f) => chartFigure(thing, f, readings.series, levels))),
      h("aside", {},
        h("h2", {}, "Open alerts"),
        open.length || m.pending.length
          ? h("ul", { class: "alerts-mini" },
              open.map((a) => h("li", { "data-alert": `${a.thing}/${a.sensorId}/${a.rule}` },
                badge(a.severity), ` ${a.rule} on ${a.sensorId}: ${a.state.toLowerCase()} since ${time(a.since)}, value `,
                alertValue(a), " ", alertActions(a, route))),
              m.pending.map((p) => pendingLine(p, m.now)))
          : h("p", { class: "ok-text" }, "none"),
        h("h2", {}, "Health"), health)),
    h("h2", {}, "Alert history"),
    m.history.length
      ? h("div", { class: "scroll" }, h("table", { class: "table" },
          h("thead", {}, h("tr", {}, ["when", "alert", "from", "to", "severity", "value", "who", "note"].map((c) => h("th", {}, c)))),
          h("tbody", {}, m.history.map((t) => h("tr", {},
            h("td", {}, time(t.at)), h("td", {}, `${t.sensorId}/${t.rule}`), h("td", {}, t.from), h("td", {}, t.to),
            h("td", {}, badge(t.severity)), h("td", {}, fixed(t.value, 1)), h("td", {}, t.who), h("td", {}, t.note || t.reason))))))
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
  const cell = (label, ...content) => h("td", { "data-label": label }, ...content);
  return h("section", { "data-loaded": true },
    h("div", { class: "title" }, h("h1", {}, "Open alerts"), h("span", { class: "filters" }, siteSelect, sevSelect)),
    items.length
      ? h("table", { class: "table stack", id: "alerts" },
          h("thead", {}, h("tr", {}, ["severity", "machine", "alert", "state", "since", "value", ""].map((c) => h("th", {}, c)))),
          h("tbody", {}, items.map((a) => h("tr", { "data-alert": `${a.thing}/${a.sensorId}/${a.rule}`, "data-state": a.state },
            cell("severity", badge(a.severity)),
            cell("machine", h("a", { href: `#/machine/${encodeURIComponent(a.thing)}` }, a.thing), h("div", { class: "muted small" }, a.site)),
            cell("alert", `${a.rule} on ${a.sensorId}`, h("div", { class: "muted small" }, a.description)),
            cell("state", a.state),
            cell("since", time(a.since)),
            cell("value", alertValue(a)),
            cell("", alertActions(a, route))))))
      : h("p", { class: "ok-text" }, "No open alert matches."));
}

function runRow(r) {
  const figures = `${r.devices} machines · ${r.duration} s · every ${r.interval} s`;
  return h("tr", { "data-run": r.id, "data-status": r.status },
    h("td", { "data-label": "run" }, h("a", { href: `#/runs/${r.id}` }, r.id.slice(0, 8))),
    h("td", { "data-label": "status" }, badge(r.status === "RUNNING" ? "running" : r.status === "COMPLETED" ? "ok" : "critical", r.status)),
    h("td", { "data-label": "user" }, r.username), h("td", { "data-label": "started" }, time(r.startedAt)),
    h("td", { "data-label": "finished" }, r.finishedAt ? time(r.finishedAt) : `ends ${time(r.endsAt)}`),
    h("td", { "data-label": "figures" }, figures), h("td", { "data-label": "site" }, (r.params && (r.params.site || r.params.profile)) || ""));
}

function runsTable(items) {
  return h("table", { class: "table stack" },
    h("thead", {}, h("tr", {}, ["run", "status", "user", "started", "finished", "figures", "site"].map((c) => h("th", {}, c)))),
    h("tbody", {}, items.map(runRow)));
}

async function runView(id) {
  const run = await api("GET", `/api/runs/${encodeURIComponent(id)}`);
  const span = new URLSearchParams({ from: String(run.startedAt) });
  if (run.finishedAt) span.set("to", String(run.finishedAt));
  const activity = await api("GET", `/api/runs/${encodeURIComponent(id)}/activity?${span}`);
  const lat = activity.latencyMs;
  const ms = (v) => (v === null || v === undefined ? "—" : `${v} ms`);
  return h("section", { "data-loaded": true },
    h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " › ", run.id),
    h("div", { class: "title" }, h("h1", {}, `Run ${run.id.slice(0, 8)}`), badge(run.status === "RUNNING" ? "running" : run.status === "COMPLETED" ? "ok" : "critical", run.status)),
    runsTable([run]),
    h("h2", {}, "Figures"),
    h("dl", { class: "health", id: "run-figures" },
      h("dt", {}, "batches"), h("dd", { "data-figure": "batches" }, String(activity.batches)),
      h("dt", {}, "readings"), h("dd", { "data-figure": "readings" }, String(activity.readings)),
      h("dt", {}, "latency (sent → stored)"),
      h("dd", { "data-figure": "latency" }, `p50 ${ms(lat.p50)} · p95 ${ms(lat.p95)} · p99 ${ms(lat.p99)} · max ${ms(lat.max)}`),
      h("dt", {}, "machines"), h("dd", {}, activity.machines.length ? activity.machines.map((t) => h("a", { href: `#/machine/${encodeURIComponent(t)}`, class: "chip" }, t)) : "—"),
      h("dt", {}, "note"), h("dd", {}, run.note || "—")),
    h("h2", {}, `Alerts during the run (${activity.transitions.length})`),
    activity.transitions.length
      ? h("table", { class: "table stack", id: "run-alerts" },
          h("thead", {}, h("tr", {}, ["when", "machine", "alert", "from", "to", "severity", "value"].map((c) => h("th", {}, c)))),
          h("tbody", {}, activity.transitions.map((t) => h("tr", { "data-alert": `${t.thing}/${t.sensorId}/${t.rule}` },
            h("td", { "data-label": "when" }, time(t.at)),
            h("td", { "data-label": "machine" }, h("a", { href: `#/machine/${encodeURIComponent(t.thing)}` }, t.thing)),
            h("td", { "data-label": "alert" }, `${t.rule} on ${t.sensorId}`),
            h("td", { "data-label": "from" }, t.from), h("td", { "data-label": "to" }, t.to),
            h("td", { "data-label": "severity" }, badge(t.severity)), h("td", { "data-label": "value" }, fixed(t.value, 1))))))
      : h("p", { class: "ok-text" }, "No alert opened or cleared during the run."));
}

async function runsView(id) {
  if (id) return runView(id);
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
window.addEventListener("resize", () => {
  for (const { plot, node } of charts.values()) fitChart(plot, node);
});
