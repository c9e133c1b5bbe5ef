// The dashboard's whole script: fetch server-rendered fragments, recolour grid
// cells from the event stream. No framework, no build step.
"use strict";

const RUN_STATES = {
  "run.queued": "queued",
  "run.started": "running",
  "run.retrying": "retrying",
  "run.succeeded": "succeeded",
  "run.failed": "failed",
  "run.skipped": "skipped",
  "run.cancelled": "cancelled",
  "run.interrupted": "interrupted",
};

const view = { search: "", page: 1, lanes: null, minutes: null, target: null };

async function fetchFragment(url, into) {
  const response = await fetch(url, { headers: { Accept: "text/html" } });
  if (response.status === 401) { location.reload(); return; }
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  document.getElementById(into).innerHTML = await response.text();
}

function debounce(action, wait) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(action, wait); };
}

const refreshSources = debounce(() => fetchFragment("/ui/sources", "sources"), 500);
const refreshGrid = () => fetchFragment(
  `/ui/grid?q=${encodeURIComponent(view.search)}&page=${view.page}`, "grid");
const refreshTimeline = debounce(() => {
  const params = new URLSearchParams();
  if (view.lanes) params.set("lanes", view.lanes);
  if (view.minutes) params.set("minutes", view.minutes);
  return fetchFragment(`/ui/timeline?${params}`, "timeline");
}, 1000);
const refreshAlerts = debounce(() => fetchFragment("/ui/alerts", "alerts"), 500);
const refreshTarget = debounce(() => view.target && openTarget(view.target), 1000);

async function openTarget(key) {
  view.target = key;
  const panel = document.getElementById("target");
  await fetchFragment(`/ui/targets/${encodeURIComponent(key)}`, "target");
  panel.hidden = false;
}

async function act(url, button) {
  button.disabled = true;
  const response = await fetch(url, { method: "POST", headers: { "X-Synchestra": "1" } });
  button.textContent = response.ok ? await response.text() : `failed (HTTP ${response.status})`;
  setTimeout(() => { button.disabled = false; refreshSources(); }, 1500);
}

function recolour(event) {
  const data = JSON.parse(event.data);
  const state = RUN_STATES[event.type];
  if (!data.source || data.target == null) return;
  const selector = `.cell[data-target="${CSS.escape(data.target)}"][data-source="${CSS.escape(data.source)}"]`;
  for (const cell of document.querySelectorAll(selector)) {
    if (state === "queued" && cell.dataset.state === "running") continue;  // a follow-up
    cell.className = `cell ${state}`;
    cell.dataset.state = state;
    cell.title = `${data.source}: ${state}${data.error ? "\n" + data.error : ""}`;
    cell.setAttribute("aria-label", `${data.target} ${data.source}: ${state}`);
  }
  if (data.target === view.target) refreshTarget();
}

function listen() {
  const live = document.getElementById("live");
  const stream = new EventSource("/ui/events");
  stream.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  stream.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
  for (const type of Object.keys(RUN_STATES)) {
    stream.addEventListener(type, (event) => { recolour(event); refreshSources(); refreshTimeline(); });
  }
  stream.addEventListener("health.changed", refreshSources);
  stream.addEventListener("alert.raised", (event) => {
    refreshAlerts();
    if (JSON.parse(event.data).target === view.target) refreshTarget();
  });
  stream.addEventListener("records.changed", (event) => {
    refreshAlerts();
    if (JSON.parse(event.data).target === view.target) refreshTarget();
  });
}

document.addEventListener("click", (event) => {
  const element = event.target.closest("button, a");
  if (!element) return;
  if (element.matches(".sync-now")) act(`/ui/sync/${encodeURIComponent(element.dataset.source)}`, element);
  else if (element.matches(".sync-target")) act(`/ui/targets/${encodeURIComponent(element.dataset.target)}/sync`, element);
  else if (element.matches(".cell, .target-link")) { event.preventDefault(); openTarget(element.dataset.target); }
  else if (element.matches(".page")) { view.page = Number(element.dataset.page); refreshGrid(); }
  else if (element.matches(".lanes")) { view.lanes = element.dataset.lanes; refreshTimeline(); }
  else if (element.matches(".span")) { view.minutes = element.dataset.minutes; refreshTimeline(); }
  else if (element.matches("#target .close")) { view.target = null; document.getElementById("target").hidden = true; }
});

document.getElementById("search").addEventListener("input", debounce(() => {
  view.search = document.getElementById("search").value;
  view.page = 1;
  refreshGrid();
}, 250));

setInterval(refreshTimeline, 10000);  // the time axis moves even when nothing happens
setInterval(() => fetchFragment("/ui/workers", "workers"), 5000);  // heartbeats send no events
listen();
