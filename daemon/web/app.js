// The daemon's dashboard: the job list, and for the selected job its curves (loss and validation
// loss, learning rate, gradient norm, tokens/s) drawn with Chart.js, refreshed every 2 seconds.
//
// The token: opened as /?token=T (what `sparta dashboard` prints), the page keeps T in
// sessionStorage, removes it from the address bar, and sends it as "Authorization: Bearer T" with
// every API request. The trade-off: the token passes once through the URL (browser history, the
// command line of a browser started with it), in exchange for a link that just works; it never
// reaches another site (the page loads nothing from elsewhere) and the tab forgets it when closed.
"use strict";

const POLL_MS = 2000;
const TOKEN_KEY = "sparta-token";
const SERIES = {
  loss: [{ key: "loss", label: "train loss", color: "#2f6fd6" }, { key: "val_loss", label: "validation loss", color: "#d6532f" }],
  lr: [{ key: "lr", label: "learning rate", color: "#1d7f3a" }],
  grad_norm: [{ key: "grad_norm", label: "gradient norm", color: "#8a3fd6" }],
  tokens_per_s: [{ key: "tokens_per_s", label: "tokens/s", color: "#9a6700" }],
};

const state = { token: null, jobs: [], selected: null, charts: {}, lastStep: null, settled: false };

function takeToken() {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  state.token = sessionStorage.getItem(TOKEN_KEY);
}

function showError(text) {
  const el = document.getElementById("error");
  el.textContent = text || "";
  el.hidden = !text;
}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + state.token }, cache: "no-store" });
  if (res.status === 401) {
    document.getElementById("auth").hidden = false;
    throw new Error("the daemon refused the token: paste the one from its state directory");
  }
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function fmt(v, digits) {
  if (v === null || v === undefined) return "-";
  if (typeof v !== "number") return String(v);
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toFixed(digits);
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;  // textContent, never innerHTML: names come from users
  if (cls) td.className = cls;
  row.appendChild(td);
}

function renderJobs(list) {
  const tbody = document.querySelector("#jobs tbody");
  tbody.replaceChildren();
  for (const j of list.jobs.slice().reverse()) {
    const tr = document.createElement("tr");
    tr.dataset.jobId = j.id;
    tr.dataset.state = j.state;
    if (j.id === state.selected) tr.classList.add("selected");
    const m = j.last_metrics;
    cell(tr, j.id);
    cell(tr, j.name, "job-name");
    cell(tr, j.cancel_requested && j.state === "running" ? "stopping" : j.state, "state state-" + j.state);
    cell(tr, (m ? m.step : "-") + "/" + j.total_steps);
    cell(tr, m ? fmt(m.loss, 4) : "-");
    cell(tr, j.gpus ? "gpu x" + j.gpus + (j.assigned_gpus ? " [" + j.assigned_gpus + "]" : "") : "cpu");
    cell(tr, new Date(j.created_at * 1000).toLocaleString());
    tr.addEventListener("click", () => select(j.id));
    tbody.appendChild(tr);
  }
  document.getElementById("no-jobs").hidden = list.jobs.length > 0;
  document.getElementById("summary").textContent =
    `${list.queue_length} queued · CPU slots ${list.cpu_slots_busy}/${list.cpu_slots} · GPUs ${list.gpus_busy}/${list.gpus}`;
}

function renderInfo(j) {
  document.getElementById("job-title").textContent = `job ${j.id}: ${j.name}`;
  const dl = document.getElementById("job-info");
  dl.replaceChildren();
  const rows = [["state", j.state + (j.message ? " (" + j.message + ")" : "")], ["config", j.config_name],
                ["run directory", j.run_dir], ["attempts", j.attempts]];
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dd.dataset.field = k;
    dl.append(dt, dd);
  }
}

function makeChart(name) {
  const canvas = document.getElementById("chart-" + name);
  return new Chart(canvas, {
    type: "line",
    data: {
      datasets: SERIES[name].map((s) => ({
        label: s.label, data: [], borderColor: s.color, backgroundColor: s.color,
        borderWidth: 1.5, pointRadius: 0, spanGaps: true,
      })),
    },
    options: {
      animation: false,
      parsing: false,
      normalized: true,
      maintainAspectRatio: false,
      interaction: { mode: "nearest", intersect: false },
      scales: {
        x: { type: "linear", title: { display: true, text: "step" } },
        y: { ticks: { callback: (v) => (v !== 0 && (Math.abs(v) < 1e-2 || Math.abs(v) >= 1e5) ? Number(v).toExponential(1) : v) } },
      },
      plugins: { legend: { display: SERIES[name].length > 1 } },
    },
  });
}

function resetCharts() {
  for (const c of Object.values(state.charts)) c.destroy();
  state.charts = {};
  for (const name of Object.keys(SERIES)) state.charts[name] = makeChart(name);
  state.lastStep = null;
  state.settled = false;
  markDrawn();
}

// After each update the figure records how many points Chart.js has laid out, per series and in
// all: what a test (or a curious user) can read to know the curves are drawn.
function markDrawn() {
  for (const [name, chart] of Object.entries(state.charts)) {
    const fig = document.querySelector(`figure[data-chart="${name}"]`);
    let total = 0;
    SERIES[name].forEach((s, i) => {
      const n = chart.getDatasetMeta(i).data.length;
      fig.dataset["points_" + s.key] = n;
      total += n;
    });
    fig.dataset.points = total;
  }
}

function addPoints(lines) {
  for (const m of lines) {
    for (const [name, series] of Object.entries(SERIES)) {
      series.forEach((s, i) => {
        const v = m[s.key];
        if (typeof v === "number") state.charts[name].data.datasets[i].data.push({ x: m.step, y: v });
      });
    }
    state.lastStep = m.step;
  }
  if (lines.length) {
    for (const c of Object.values(state.charts)) c.update("none");
  }
  markDrawn();
}

async function refreshSelected() {
  if (state.selected === null) return;
  const id = state.selected;
  const job = await api(`/api/jobs/${id}`);
  if (id !== state.selected) return;
  renderInfo(job);
  // The x axis spans the whole run from the start, so a running job's curves show how far it is.
  for (const c of Object.values(state.charts)) {
    if (c.options.scales.x.max !== job.total_steps) {
      c.options.scales.x.min = 0;
      c.options.scales.x.max = job.total_steps;
      c.update("none");
    }
  }
  if (state.settled) return;
  const since = state.lastStep === null ? "" : `?since=${state.lastStep}`;
  const res = await api(`/api/jobs/${id}/metrics${since}`);
  if (id !== state.selected) return;
  addPoints(res.metrics);
  // Once the job has settled and its last lines are drawn, there is nothing more to fetch.
  state.settled = !["queued", "running"].includes(res.state) && res.metrics.length === 0;
}

function select(id) {
  state.selected = id;
  history.replaceState(null, "", `#job=${id}`);
  document.getElementById("job-panel").hidden = false;
  for (const tr of document.querySelectorAll("#jobs tbody tr")) tr.classList.toggle("selected", Number(tr.dataset.jobId) === id);
  resetCharts();
  refreshSelected().catch((e) => showError(e.message));
}

async function tick() {
  try {
    const list = await api("/api/jobs");
    state.jobs = list.jobs;
    renderJobs(list);
    if (state.selected === null && list.jobs.length) {
      const fromHash = /job=(\d+)/.exec(window.location.hash);
      const running = list.jobs.filter((j) => j.state === "running");
      const pick = fromHash ? Number(fromHash[1]) : (running.length ? running[running.length - 1] : list.jobs[list.jobs.length - 1]).id;
      select(pick);
    } else {
      await refreshSelected();
    }
    showError("");
  } catch (e) {
    showError(e.message);
  }
}

function start() {
  takeToken();
  document.getElementById("auth").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
    state.token = sessionStorage.getItem(TOKEN_KEY);
    document.getElementById("auth").hidden = true;
    tick();
  });
  if (typeof Chart === "undefined") {
    showError("the charting library (/chart.js) did not load");
    return;
  }
  if (!state.token) {
    document.getElementById("auth").hidden = false;
    return;
  }
  tick();
  setInterval(tick, POLL_MS);
}

start();
