// livecam's page: the camera (or the server's source) on a canvas, with the heat map drawn here
// from the small map the server returns. One frame is in flight at a time: the newest frame is
// sent when the previous answer arrives, so the delay stays at about one engine step.
//
// This module wires the others together. Every URL of this server needs the token, and the
// browser would fetch a static `import` without the page's query: so the modules are imported
// with it (`import()` of a URL that carries this module's own query).

const token = new URLSearchParams(location.search).get("token");
const query = token ? `?token=${encodeURIComponent(token)}` : "";
const here = new URL(import.meta.url).search;
const load = (name) => import(`./${name}.js${here}`);
const [{ Camera }, { Files, drawReadout, hudFont }, { HeatLayer, base64Bytes }, { bindKeys }, { Panels, panelCaptions }, { rulesFrom, percent, stepAlpha }, { Connection }, ui] =
  await Promise.all(["camera", "files", "heat", "keys", "panels", "rules", "socket", "ui"].map(load));
const { $, notice, clearNotice } = ui;

// What the person chose: changed only through steer(), which tells the server (the connection's
// state is the authority for what it computes); kept across reconnects, and told to a new connection.
const settings = {
  method: null,
  classId: null,
  contrast: null,
  alpha: 0.4,
  colormap: "jet",
  paused: false,
  box: null,
  normalize: "frame",
  compare: null, // side by side: "classes", "methods" or null
  faithfulness: true,
};
// Each setting's name in a controls message (docs/serve-api.md), and how the page shows it.
const CONTROLS = {
  method: "method",
  classId: "class_id",
  contrast: "contrast",
  alpha: "alpha",
  colormap: "colormap",
  paused: "paused",
  box: "box",
  normalize: "normalize",
  compare: "compare",
  faithfulness: "faithfulness",
};
const SHOW = {
  method: (method) => ($("method").value = method),
  classId: (classId) => ui.showLocked(classId !== null),
  contrast: (contrast) => ($("clear-contrast").hidden = contrast === null),
  alpha: ui.showAlpha,
  colormap: (name) => ui.drawLegend(server.luts[name]),
  paused: ui.showPaused,
  box: (box) => {
    $("clear-box").disabled = box === null;
    if (box === null) $("region").textContent = "No box: drag on the picture to ask how much of the heat is on a thing.";
  },
  normalize: (normalize) => {
    $("normalize").value = normalize;
    if (server.config) $("legend-high").textContent = server.config.rules.scale_labels[normalize];
  },
  compare: (compare) => ($("compare").value = compare || ""),
  faithfulness: ui.showFaithfulness,
};
// These change what the server computes for a frame: while paused, the frozen frame is asked again.
const ASKS_AGAIN = ["method", "classId", "contrast", "box", "normalize", "compare"];
// What the server said: its config, the rules taken from it, the colormap tables.
const server = { config: null, rules: null, luts: {}, configured: false };
// What is shown: the picture's source, the last answer, and counts.
const shown = {
  mode: "camera", // or "source"
  last: null, // the last result message
  results: 0,
  errors: 0,
  picture: null, // the server's source: an ImageBitmap
  pictureSize: [640, 480],
  rtt: 0,
  rttLog: [], // [time, round trip] in ms, the last few thousand (for scripts/bench_serve.py)
  reexplain: false, // explain the frozen frame again once the answer in flight is back
  drag: null, // a box being drawn: [x0, y0, x1, y1] in fractions of the picture
};
const answers = new ui.RateMeter();
const frames = new ui.RateMeter();
const camera = new Camera();
const heat = new HeatLayer(null); // its rules come with the config, before the first answer
const view = $("view");
const format = (p) => (server.rules ? percent(p, server.rules.percent) : percent(p));
const files = new Files(view, fileHud, format);
const panels = new Panels(format);
const connection = new Connection(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${query}`, {
  open() {
    ui.setConnection("connected", "up");
    // A new connection starts with the server's defaults: tell it this page's settings.
    connection.sendControls(controls(settings));
    if (shown.mode === "source") pull();
    else sendFrame();
  },
  message: onMessage,
  closed(seconds) {
    ui.setConnection(`server gone — reconnecting in ${seconds.toFixed(1)} s…`, "down");
    notice(`The server went away (stopped or restarted, or the network dropped). Reconnecting on its own…`, "server");
  },
  reconnecting: loadConfig,
});

// A read-only view for the curious and for tests (window.livecam.results, .last, .classId, ...).
window.livecam = Object.freeze({
  get config() { return server.config; },
  get rules() { return server.rules; },
  get mode() { return shown.mode; },
  get last() { return shown.last; },
  get results() { return shown.results; },
  get errors() { return shown.errors; },
  get pictureSize() { return shown.pictureSize; },
  get rttLog() { return shown.rttLog; },
  get method() { return settings.method; },
  get classId() { return settings.classId; },
  get alpha() { return settings.alpha; },
  get colormap() { return settings.colormap; },
  get paused() { return settings.paused; },
  get box() { return settings.box; },
  get normalize() { return settings.normalize; },
  get compare() { return settings.compare; },
  get faithfulness() { return settings.faithfulness; },
  get smoothed() { return heat.smoothed; },
  get cameraError() { return camera.error; },
  get recording() { return files.recording; },
}); // prettier-ignore

// What the files' HUD shows: the answer's label and probability, the padlock, the colour bar
// (side by side, each panel carries its own label).
function fileHud() {
  const last = shown.last;
  const label = last && !sideBySide() ? last.label : null;
  return { label, prob: last && last.prob, locked: settings.classId !== null, lut: server.luts[settings.colormap] || null };
}

// The answer on screen shows panels side by side.
function sideBySide() {
  return Boolean(shown.last && shown.last.panels && shown.last.panels.length);
}

// ------------------------------------------------------------------ start

async function start() {
  bindControls();
  bindKeys({
    pause: togglePause,
    nextMethod,
    unlock: () => lockClass(null),
    lockRank: (rank) => {
      const entry = shown.last && shown.last.topk[rank - 1]; // the k-th of the top classes shown
      if (entry) lockClass(entry.id);
    },
    alphaDown: () => stepOpacity(-1),
    alphaUp: () => stepOpacity(1),
    snapshot: () => files.snapshot(),
    record: toggleRecording,
    fullscreen: ui.toggleFullscreen,
    help: ui.toggleHelp,
    clearBox: () => steer({ box: null }),
  });
  await loadConfig();
  connection.connect();
  requestAnimationFrame(draw);
  const source = Boolean(server.config && server.config.source);
  if (source && !window.isSecureContext) {
    await setMode("source"); // no camera here: show what the server sees, and say why
    insecureNotice();
  } else if (!(await setMode("camera", { fallback: source })) && source) {
    await setMode("source", { keepNotice: true }); // no camera, or refused: the server's source, and the notice says why
  }
}

async function loadConfig() {
  for (;;) {
    try {
      const response = await fetch(`api/config${query}`, { cache: "no-store" });
      if (response.status === 401) {
        notice("This server needs its token: open the exact URL that `livecam serve` printed (it ends in ?token=…).");
        return;
      }
      applyConfig(await response.json());
      return;
    } catch (err) {
      ui.setConnection("server unreachable, retrying…", "down");
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

function applyConfig(config) {
  server.config = config;
  server.rules = rulesFrom(config);
  heat.rules = server.rules;
  $("model").textContent = `model ${config.model} · layer ${config.layer}`;
  if (settings.method === null) settings.method = config.method;
  if (!server.configured) { // the first time only: a reconnect keeps what the user chose
    server.configured = true;
    settings.alpha = config.alpha;
    settings.colormap = config.colormap in config.colormaps ? config.colormap : "jet";
  }
  server.luts = {};
  for (const [name, b64] of Object.entries(config.colormaps)) server.luts[name] = base64Bytes(b64);
  ui.fillSelect($("method"), config.methods, settings.method);
  ui.fillSelect($("colormap"), Object.keys(config.colormaps), settings.colormap);
  ui.showAlpha(settings.alpha);
  $("mode-source").hidden = !config.source;
  $("faithfulness").hidden = !config.faithfulness; // --faithfulness 0: nothing to turn on
  if (config.source) {
    $("mode-source").title = config.source;
    $("stream-link").hidden = false;
    $("mjpeg").href = `stream.mjpg${query}`;
  }
  ui.drawLegend(server.luts[settings.colormap]);
  SHOW.normalize(settings.normalize);
}

// ------------------------------------------------------------------ answers

function onMessage(message) {
  if (message.type === "result") {
    connection.inFlight = false;
    if (shown.mode === "camera") {
      clearNotice("server");
      shown.rtt = performance.now() - connection.sentAt;
      shown.rttLog.push([performance.now(), shown.rtt]);
      if (shown.rttLog.length > 5000) shown.rttLog.splice(0, 1000);
      showResult(message);
      sendFrame(settings.paused && shown.reexplain);
    }
  } else if (message.type === "source_result") {
    if (shown.mode === "source") {
      clearNotice("server");
      // The picture and its map change together; then ask for the next one.
      showSourceImage(message.image).then(() => {
        showResult(message);
        pull();
      });
    }
  } else if (message.type === "source_error") {
    // A frame of the server's source the engine failed on: say so, and go on with the next one.
    shown.errors += 1;
    notice(`The server could not explain frame ${message.frame} of its source: ${message.message}`, "frame");
    if (shown.mode === "source") setTimeout(pull, 200);
  } else if (message.type === "error") {
    shown.errors += 1;
    connection.inFlight = false;
    notice(`The server could not explain frame ${message.seq}: ${message.message}`, "frame");
    setTimeout(sendFrame, 200);
  } else if (message.type === "control_error" || message.type === "notice") {
    notice(message.message, "control");
  }
}

function showResult(message) {
  shown.last = message;
  shown.results += 1;
  answers.tick(performance.now());
  // What the map answers: the smoothing restarts when the method or the locked class changes.
  // ... or the contrast class ("why A and not B").
  const lock = settings.classId === null ? "" : message.class_id;
  heat.update(message.cam, `${message.method}|${lock}|${message.contrast_id ?? ""}`);
  $("label").textContent = message.contrast_name ? `${message.label} not ${message.contrast_name}` : message.label;
  $("prob").textContent = format(message.prob);
  ui.showLocked(settings.classId !== null);
  ui.showTopk(message, format, pickClass);
  if (message.box_xywh) $("region").textContent = regionText(message);
  if (message.faith_text) $("faith").textContent = message.faith_text; // held until the next readout
  panels.update(message, server.rules);
  ui.showPanels(panelCaptions(message, format));
}

// The box's readout, worded as the window draws it (rules.region, livecam/trust/region.py).
function regionText(message) {
  const words = server.config.rules.region;
  if (message.box_energy === null) return words.no_heat;
  const share = `${Math.round(100 * message.box_energy)}%`;
  return words.heat.replace("{share}", share).replace("{peak}", message.box_peak_inside ? words.inside : words.outside);
}

async function showSourceImage(b64) {
  const bitmap = await createImageBitmap(new Blob([base64Bytes(b64)], { type: "image/jpeg" }));
  if (shown.picture && shown.picture.close) shown.picture.close();
  shown.picture = bitmap;
  shown.pictureSize = [bitmap.width, bitmap.height];
}

function pull() {
  if (!settings.paused) connection.sendControls({ pull: "source" });
}

// The newest camera frame; while paused (force), the frozen one again, to explain it anew.
function sendFrame(force = false) {
  if (shown.mode !== "camera" || !camera.ready || (settings.paused && !force)) return;
  if (connection.inFlight || !connection.open) {
    if (force) shown.reexplain = true; // once the answer in flight is back
    return;
  }
  const picture = settings.paused ? camera.frozen : camera.video;
  if (!picture) return;
  shown.reexplain = false;
  const capturedAt = performance.now(); // the round trip counts the encoding too: the user waits for it
  connection.sendFrame(camera.encode(picture, server.config && server.config.input_size), capturedAt);
}

// ------------------------------------------------------------------ the camera

// fallback: the page turns to the server's source if this fails (the notice says so).
async function startCamera(fallback = false) {
  const alt = !(server.config && server.config.source) ? "" : fallback ? " Meanwhile this shows the server's source." : " Or watch the server's source instead.";
  const failure = await camera.start(alt);
  if (failure === "insecure") insecureNotice();
  else if (failure) notice(failure, "camera");
  else clearNotice("camera");
  return failure === null;
}

function insecureNotice() {
  const port = location.port || (location.protocol === "https:" ? "443" : "80");
  notice(
    `Browsers allow the camera only on HTTPS pages or on localhost, and this page is ${location.origin}. ` +
      `Either start the server with HTTPS (livecam serve --certfile cert.pem --keyfile key.pem) and open https://…, ` +
      `or open an SSH tunnel from this computer — ssh -L ${port}:localhost:${port} USER@${location.hostname} — ` +
      `and open http://localhost:${port}/${query}` +
      (server.config && server.config.source ? ". Meanwhile this shows the server's source." : "."),
    "insecure",
  );
}

// ------------------------------------------------------------------ the display

function draw() {
  requestAnimationFrame(draw);
  const live = shown.mode === "camera";
  const picture = live ? camera.picture(settings.paused) : shown.picture;
  if (!picture) return;
  const [width, height] = live ? [picture.videoWidth || picture.width, picture.videoHeight || picture.height] : shown.pictureSize;
  const grid = sideBySide();
  const [viewW, viewH] = grid ? panels.size(shown.last, width, height, server.rules) : [width, height];
  if (view.width !== viewW || view.height !== viewH) {
    view.width = viewW;
    view.height = viewH;
  }
  // Read back at every frame only by the uniform blend (heat.js): then kept in memory, not on the graphics card.
  const ctx = view.getContext("2d", { willReadFrequently: Boolean(server.rules && server.rules.blend === "uniform") });
  const lut = server.luts[settings.colormap];
  if (grid) {
    panels.draw(ctx, picture, width, height, shown.last, settings.alpha, lut, server.rules);
  } else {
    ctx.drawImage(picture, 0, 0, width, height);
    if (shown.last) heat.draw(ctx, width, height, shown.last.box, settings.alpha, lut);
    drawBox(ctx, width, height);
  }
  files.drawn();
  const now = performance.now();
  frames.tick(now);
  if (live) sendFrame(); // in case nothing is in flight (first frame, after a reconnect)
  const [answersPerS, framesPerS] = [answers.rate(now), frames.rate(now)];
  if (shown.last) ui.showStats(shown.last, live ? shown.rtt : 0, answersPerS, framesPerS);
}

// The box the person drew (or is drawing), over the heat, with its readout once an answer has
// scored it, as the window draws them: so the snapshots and recordings (files.js) carry them too.
function drawBox(ctx, width, height) {
  const box = shown.drag ? [shown.drag[0], shown.drag[1], shown.drag[2] - shown.drag[0], shown.drag[3] - shown.drag[1]] : settings.box;
  if (!box) return;
  const [x, y, w, h] = [box[0] * width, box[1] * height, box[2] * width, box[3] * height];
  ctx.lineWidth = Math.max(2, width / 320);
  ctx.strokeStyle = "#000";
  ctx.strokeRect(x, y, w, h);
  ctx.lineWidth /= 2;
  ctx.strokeStyle = "#ebebeb";
  ctx.strokeRect(x, y, w, h);
  if (!shown.drag && shown.last && shown.last.box_xywh) drawReadout(ctx, hudFont(height), Math.round(x), Math.round(y), regionText(shown.last));
}

// Where a pointer is on the picture, in fractions of it (the canvas keeps the picture's aspect: object-fit contain).
function pictureFraction(event) {
  const rect = view.getBoundingClientRect();
  const scale = Math.min(rect.width / view.width, rect.height / view.height);
  const [left, top] = [(rect.width - view.width * scale) / 2, (rect.height - view.height * scale) / 2];
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((event.clientX - rect.left - left) / (view.width * scale)), clamp((event.clientY - rect.top - top) / (view.height * scale))];
}

// A drag on the picture draws the box; a click (under 1 % of the picture either way) does nothing.
function bindBoxDrawing() {
  view.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || sideBySide()) return; // a box is drawn on the picture, not on the grid
    const [x, y] = pictureFraction(event);
    shown.drag = [x, y, x, y];
    view.setPointerCapture(event.pointerId);
  });
  view.addEventListener("pointermove", (event) => {
    if (shown.drag) shown.drag = [shown.drag[0], shown.drag[1], ...pictureFraction(event)];
  });
  view.addEventListener("pointerup", (event) => {
    if (!shown.drag) return;
    const [x0, y0] = shown.drag;
    const [x1, y1] = pictureFraction(event);
    shown.drag = null;
    const round = (v) => Math.round(v * 1e4) / 1e4;
    const box = [Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0)].map(round);
    if (box[2] >= 0.01 && box[3] >= 0.01) steer({ box }); // fractions: all four in [0, 1]
  });
}

// ------------------------------------------------------------------ controls

function bindControls() {
  $("mode-camera").addEventListener("click", () => setMode("camera"));
  $("mode-source").addEventListener("click", () => setMode("source"));
  $("method").addEventListener("change", (e) => steer({ method: e.target.value }));
  $("colormap").addEventListener("change", (e) => steer({ colormap: e.target.value }));
  $("alpha").addEventListener("input", (e) => steer({ alpha: Number(e.target.value) }));
  $("unlock").addEventListener("click", () => lockClass(null));
  $("pause").addEventListener("click", togglePause);
  $("snapshot").addEventListener("click", () => files.snapshot());
  $("record").addEventListener("click", toggleRecording);
  $("fullscreen").addEventListener("click", ui.toggleFullscreen);
  $("fullscreen").hidden = !document.fullscreenEnabled;
  document.addEventListener("fullscreenchange", () => $("fullscreen").setAttribute("aria-pressed", String(Boolean(document.fullscreenElement))));
  $("keys").addEventListener("click", ui.toggleHelp);
  $("clear-contrast").addEventListener("click", () => steer({ contrast: null }));
  $("clear-box").addEventListener("click", () => steer({ box: null }));
  $("normalize").addEventListener("change", (e) => steer({ normalize: e.target.value }));
  $("compare").addEventListener("change", (e) => steer({ compare: e.target.value || null }));
  bindBoxDrawing();
  $("faithfulness").addEventListener("click", () => steer({ faithfulness: !settings.faithfulness }));
}

// Every change of what the person steers goes through here: the page's settings, what it shows
// of them, and one controls message to the server (a reconnect sends them all again: open()).
// A new method or class is a new question: while paused, it is asked of the frozen frame; of the
// server's source with a pull in the same message, which the server answers after applying the
// rest (with the frame it sent last, explained again), and of the camera's by sending it again.
function steer(fields) {
  Object.assign(settings, fields);
  for (const name of Object.keys(fields)) SHOW[name](settings[name]);
  const message = controls(fields);
  const asksAgain = ASKS_AGAIN.some((name) => name in fields);
  if (asksAgain && settings.paused && shown.mode === "source") message.pull = "source";
  connection.sendControls(message);
  if (asksAgain) sendFrame(true);
}

// Settings as a controls message (a method only once the config has named one).
function controls(fields) {
  const message = {};
  for (const [name, value] of Object.entries(fields)) if (name !== "method" || value !== null) message[CONTROLS[name]] = value;
  return message;
}

function nextMethod() {
  if (!server.config) return;
  const methods = server.config.methods;
  steer({ method: methods[(methods.indexOf(settings.method) + 1) % methods.length] });
}

function stepOpacity(steps) {
  if (server.rules) steer({ alpha: stepAlpha(settings.alpha, steps, server.rules) });
}

// Returns whether the camera started (mode "camera"); keepNotice leaves the camera's notice up.
async function setMode(mode, { fallback = false, keepNotice = false } = {}) {
  shown.mode = mode;
  $("mode-camera").setAttribute("aria-pressed", String(mode === "camera"));
  $("mode-source").setAttribute("aria-pressed", String(mode === "source"));
  shown.last = null;
  heat.reset();
  if (mode === "camera") {
    const started = await startCamera(fallback);
    if (started) sendFrame();
    return started;
  }
  if (!keepNotice) clearNotice("camera");
  pull();
  return false;
}

function lockClass(classId) {
  steer({ classId });
}

// A class of the top list: a click locks it; a shift-click contrasts the explained class with it.
function pickClass(classId, shift) {
  if (shift) steer({ contrast: classId });
  else lockClass(classId);
}

function togglePause() {
  if (!settings.paused && shown.mode === "camera") camera.freeze();
  steer({ paused: !settings.paused });
  if (!settings.paused) {
    if (shown.mode === "camera") sendFrame();
    else pull();
  }
}

function toggleRecording() {
  files.toggleRecording(
    (recording) => {
      $("rec").hidden = !recording;
      $("record").textContent = recording ? "Stop and save" : "Record";
      $("record").setAttribute("aria-pressed", String(recording));
    },
    (text) => notice(text, "record"),
  );
}

start();
