// gvae-serve's page: draw or upload a digit, see its reconstruction and posterior, edit its latent codes,
// sample the prior, inspect the model. Plain JS, no build step; it only calls the public /v1 API
// (docs/api.md), sending X-API-Key from the key field (kept in sessionStorage, never localStorage).
"use strict";

const KEY_STORAGE = "gvae-api-key";
const TAU_MIN = 0.1;  // the temperature slider is logarithmic, TAU_MIN..TAU_MAX
const TAU_MAX = 5;
const SLIDER_STEPS = 1000;
const SAMPLE_N = 64;
const DEBOUNCE_MS = 150;

const $ = (id) => document.getElementById(id);
const state = {
  latentDim: 30,  // N and K are read from /v1/models/current; these are the bundled model's
  categoricalDim: 10,
  codes: [],  // the editor's current code, N integers in [0, K)
  drawingCode: null,  // argmax code of the last drawing
  probs: null,  // the last drawing's N x K posterior
  urls: {},  // object URLs in use, by image id (revoked when replaced)
  requests: {},  // the latest request of each kind: older answers are ignored
};

// ------------------------------------------------------------------------------------------ API calls
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = apiKey();
  if (key) headers.set("X-API-Key", key);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `cannot reach the server (${err.message}): is it running?`);
  }
  if (!response.ok) throw new ApiError(response.status, await describeError(response));
  return response;
}

async function describeError(response) {
  let detail = "";
  try {
    const body = await response.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
  } catch {
    detail = response.statusText || "no details";
  }
  if (response.status === 401 || response.status === 403) {
    return `this server needs an API key: enter it above (${response.status}: ${detail})`;
  }
  if (response.status === 503) return `the server is not ready (${detail})`;
  return `${response.status}: ${detail}`;
}

// Runs `task(signal)` as the only live request of `kind`: an older one still running is aborted, and
// only the newest one reports. Errors go to the status line `statusId`.
async function latest(kind, statusId, task) {
  state.requests[kind]?.abort();
  const controller = new AbortController();
  state.requests[kind] = controller;
  try {
    const done = await task(controller.signal);
    if (state.requests[kind] === controller) setStatus(statusId, done || "");
  } catch (err) {
    if (err.name === "AbortError" || state.requests[kind] !== controller) return;
    if (err.status === 401 || err.status === 403) {
      // said once, next to the key field, rather than in every panel
      setStatus("global-status", err.message, true);
      $("key-form").classList.add("needs-key");
      setStatus(statusId, "needs an API key (see above)", true);
      return;
    }
    setStatus(statusId, err.message, true);
  }
}

function setStatus(id, text, isError = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function showBlob(imgId, blob) {
  const img = $(imgId);
  if (state.urls[imgId]) URL.revokeObjectURL(state.urls[imgId]);
  state.urls[imgId] = URL.createObjectURL(blob);
  img.src = state.urls[imgId];
  img.dataset.updates = String(Number(img.dataset.updates || 0) + 1);
}

// ------------------------------------------------------------------------------------------ API key
function setupKey() {
  const input = $("api-key");
  input.value = apiKey();
  const describe = () => {
    $("key-state").textContent = apiKey() ? "key set for this tab (sessionStorage)" : "kept in this tab only (sessionStorage)";
  };
  describe();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    describe();
    refreshAll();
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    input.value = "";
    describe();
  });
}

// ------------------------------------------------------------------------------------------ drawing pad
function setupPad() {
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  const clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, pad.width, pad.height);
    pad.dataset.ink = "0";
  };
  clear();
  let drawing = false;
  let last = null;
  const point = (event) => {
    const box = pad.getBoundingClientRect();
    return [(event.clientX - box.left) * (pad.width / box.width), (event.clientY - box.top) * (pad.height / box.height)];
  };
  const strokeTo = (p) => {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = pad.width / 14;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...p);
    ctx.stroke();
    last = p;
    pad.dataset.ink = "1";
  };
  pad.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    drawing = true;
    last = point(event);
    strokeTo(last);
  });
  pad.addEventListener("pointermove", (event) => {
    if (drawing) strokeTo(point(event));
  });
  const finish = () => {
    if (!drawing) return;
    drawing = false;
    pad.toBlob((blob) => submitDigit(blob, "drawing.png"), "image/png");
  };
  pad.addEventListener("pointerup", finish);
  pad.addEventListener("pointercancel", finish);
  $("clear").addEventListener("click", () => {
    clear();
    setStatus("draw-status", "Draw a digit in the black square.");
  });
  $("upload").addEventListener("change", () => {
    const file = $("upload").files[0];
    if (!file) return;
    previewUpload(file, ctx, pad).finally(() => submitDigit(file, file.name));
    $("upload").value = "";
  });
  $("recon-mode").addEventListener("change", () => {
    if (pad.dataset.ink === "1") pad.toBlob((blob) => submitDigit(blob, "drawing.png"), "image/png");
  });
}

// Shows an uploaded image in the pad (fitted, centred); the server gets the file itself.
async function previewUpload(file, ctx, pad) {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  try {
    const bitmap = await createImageBitmap(file);
    const s = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    const w = bitmap.width * s;
    const h = bitmap.height * s;
    ctx.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    pad.dataset.ink = "1";
  } catch {
    // not an image the browser can show: the server will say what is wrong with it
  }
}

function submitDigit(blob, filename) {
  const mode = $("recon-mode").value;
  setStatus("draw-status", "encoding...");
  latest("digit", "draw-status", async (signal) => {
    const form = () => {
      const data = new FormData();
      data.append("files", blob, filename);
      return data;
    };
    const [encoded, recon] = await Promise.all([
      api("/v1/encode", { method: "POST", body: form(), signal }).then((r) => r.json()),
      api(`/v1/reconstruct?mode=${mode}&padding=0&nrow=1`, { method: "POST", body: form(), signal })
        .then((r) => r.blob()),
    ]);
    if (signal.aborted) return "";
    showBlob("input-img", recon);
    showBlob("recon-img", recon);
    const result = encoded.results[0];
    state.probs = result.probs;
    state.drawingCode = result.code;
    $("codes-from-drawing").disabled = false;
    drawHeatmap(result.probs);
    setCodes(result.code);
    return `reconstructed by ${encoded.model}`;
  });
}

// ------------------------------------------------------------------------------------------ posterior heat map
function heatColor(p) {
  // black -> purple -> orange -> pale yellow (an inferno-like ramp), p in [0, 1]
  const stops = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];
  const x = Math.max(0, Math.min(1, p)) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const t = x - i;
  return stops[i].map((c, j) => Math.round(c + t * (stops[i + 1][j] - c)));
}

function drawHeatmap(probs) {
  const canvas = $("heatmap");
  const n = probs.length;
  const k = probs[0].length;
  const cell = 10;
  canvas.width = n * cell;
  canvas.height = k * cell;
  const ctx = canvas.getContext("2d");
  for (let v = 0; v < n; v++) {
    for (let c = 0; c < k; c++) {
      const [r, g, b] = heatColor(probs[v][c]);
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      ctx.fillRect(v * cell, c * cell, cell, cell);
    }
  }
  canvas.dataset.drawn = "1";
}

// ------------------------------------------------------------------------------------------ latent editor
function buildLatentGrid() {
  const grid = $("latent-grid");
  grid.replaceChildren();
  grid.style.setProperty("--n", state.latentDim);
  grid.style.setProperty("--k", state.categoricalDim);
  for (let v = 0; v < state.latentDim; v++) {
    for (let c = 0; c < state.categoricalDim; c++) {
      const cell = document.createElement("button");
      cell.type = "button";
      cell.className = "cell";
      cell.dataset.variable = String(v);
      cell.dataset.class = String(c);
      cell.title = `z${v + 1} = ${c}`;
      cell.setAttribute("aria-label", `set z${v + 1} to class ${c}`);
      cell.textContent = String(c);
      grid.appendChild(cell);
    }
  }
  grid.addEventListener("click", (event) => {
    const cell = event.target.closest(".cell");
    if (!cell) return;
    const codes = [...state.codes];
    codes[Number(cell.dataset.variable)] = Number(cell.dataset.class);
    setCodes(codes);
  });
}

function paintLatentGrid() {
  for (const cell of $("latent-grid").children) {
    const v = Number(cell.dataset.variable);
    const c = Number(cell.dataset.class);
    const selected = state.codes[v] === c;
    cell.classList.toggle("selected", selected);
    cell.setAttribute("aria-pressed", String(selected));
    const p = state.probs ? state.probs[v][c] : 0;
    cell.style.setProperty("--p", p.toFixed(3));
  }
  $("code-text").textContent = `codes: [${state.codes.join(", ")}]`;
}

function setCodes(codes) {
  state.codes = codes;
  paintLatentGrid();
  latest("decode", "latent-status", async (signal) => {
    const response = await api("/v1/decode?padding=0", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ codes: [codes] }),
      signal,
    });
    showBlob("decoded-img", await response.blob());
    return "";
  });
}

function randomCodes() {
  return Array.from({ length: state.latentDim }, () => Math.floor(Math.random() * state.categoricalDim));
}

function setupLatentEditor() {
  buildLatentGrid();
  $("codes-random").addEventListener("click", () => setCodes(randomCodes()));
  $("codes-from-drawing").addEventListener("click", () => {
    if (state.drawingCode) setCodes(state.drawingCode);
  });
}

// ------------------------------------------------------------------------------------------ prior samples
function sliderTemperature() {
  const v = Number($("temperature").value) / SLIDER_STEPS;
  const tau = TAU_MIN * Math.pow(TAU_MAX / TAU_MIN, v);
  return Number(tau.toPrecision(3));
}

function requestSamples() {
  const tau = sliderTemperature();
  $("temperature-value").textContent = tau.toFixed(2);
  const seedField = $("seed");
  if (seedField.value === "" || Number(seedField.value) < 0) seedField.value = "0";
  const params = new URLSearchParams({
    n: String(SAMPLE_N), nrow: "8", temperature: String(tau), hard: String($("hard").checked),
    seed: String(Math.floor(Number(seedField.value))),
  });
  latest("sample", "sample-status", async (signal) => {
    const response = await api(`/v1/sample?${params}`, { signal });
    showBlob("samples-img", await response.blob());
    const img = $("samples-img");
    img.dataset.temperature = String(tau);
    img.dataset.seed = response.headers.get("X-Seed") || params.get("seed");
    return `${SAMPLE_N} samples at temperature ${tau}${$("hard").checked ? ", one-hot" : ""}, seed ${img.dataset.seed}`;
  });
}

function setupSamples() {
  let timer = null;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(requestSamples, DEBOUNCE_MS);
  };
  $("temperature").addEventListener("input", () => {
    $("temperature-value").textContent = sliderTemperature().toFixed(2);
    soon();
  });
  $("hard").addEventListener("change", requestSamples);
  $("seed").addEventListener("change", requestSamples);
  $("resample").addEventListener("click", () => {
    $("seed").value = String(Math.floor(Math.random() * 2 ** 31));
    requestSamples();
  });
}

// ------------------------------------------------------------------------------------------ model panel
function formatValue(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(5);
  if (value && typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function fillTable(table, header, rows) {
  table.replaceChildren();
  if (header) {
    const tr = table.createTHead().insertRow();
    for (const h of header) {
      const th = document.createElement("th");
      th.textContent = h;
      tr.appendChild(th);
    }
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    row.forEach((cell, i) => {
      const td = document.createElement(!header && i === 0 ? "th" : "td");
      td.textContent = formatValue(cell);
      tr.appendChild(td);
    });
  }
}

async function loadModel() {
  await latest("model", "model-status", async (signal) => {
    const current = await api("/v1/models/current", { signal }).then((r) => r.json());
    const meta = current.metadata || {};
    const config = meta.model_config || {};
    $("model-tag").textContent = `${current.tag} on ${current.device}`;
    const facts = [
      ["version", current.tag], ["device", current.device], ["created", meta.created_at || "?"],
      ["latents", `${config.latent_dim ?? "?"} x ${config.categorical_dim ?? "?"} categorical`],
      ["hidden layers", (config.hidden_dims || []).join(", ") || "?"],
    ];
    if (meta.description) facts.push(["description", meta.description]);
    const dl = $("model-facts");
    dl.replaceChildren();
    for (const [name, value] of facts) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dl.append(dt, dd);
    }
    fillTable($("model-metrics"), null, Object.entries(meta.metrics || {}));
    const n = config.latent_dim || state.latentDim;
    const k = config.categorical_dim || state.categoricalDim;
    if (n !== state.latentDim || k !== state.categoricalDim || !state.codes.length) {
      state.latentDim = n;
      state.categoricalDim = k;
      state.probs = null;
      $("latent-count").textContent = String(n);
      buildLatentGrid();
      setCodes(randomCodes());
    }
    return await loadRecord(signal);
  });
}

// The training curves: degrade to a note when the version has no training record (404).
async function loadRecord(signal) {
  const notes = [];
  try {
    const png = await api("/v1/models/current/record/loss_curve.png", { signal }).then((r) => r.blob());
    showBlob("loss-curve", png);
    $("loss-curve").hidden = false;
  } catch (err) {
    if (err.status !== 404) throw err;
    $("loss-curve").hidden = true;
    notes.push("no training curves: this version was registered without a training record");
  }
  try {
    const epochs = await api("/v1/models/current/record/metrics.json", { signal }).then((r) => r.json());
    const columns = [...new Set(epochs.flatMap((row) => Object.keys(row)))];
    const ordered = ["epoch", ...columns.filter((c) => c !== "epoch")].filter((c) => columns.includes(c));
    fillTable($("epoch-table"), ordered, epochs.map((row) => ordered.map((c) => row[c] ?? "")));
    $("epochs-details").hidden = false;
    $("epochs-details").querySelector("summary").textContent = `per-epoch metrics (${epochs.length} epochs)`;
  } catch (err) {
    if (err.status !== 404) throw err;
    $("epochs-details").hidden = true;
    if (!notes.length) notes.push("no per-epoch metrics in this version's record");
  }
  return notes.join("; ");
}

// ------------------------------------------------------------------------------------------ start
function refreshAll() {
  setStatus("global-status", "");
  $("key-form").classList.remove("needs-key");
  loadModel();
  requestSamples();
  if (state.codes.length) setCodes(state.codes);
}

document.addEventListener("DOMContentLoaded", () => {
  setupKey();
  setupPad();
  setupLatentEditor();
  setupSamples();
  refreshAll();
});
