// livecam's page: the camera (or the server's source) on a canvas, with the heat map drawn here
// from the small map the server returns. One frame is in flight at a time: the newest frame is
// sent when the previous answer arrives, so the delay stays at about one engine step.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const query = token ? `?token=${encodeURIComponent(token)}` : "";
const JPEG_QUALITY = 0.85;
const $ = (id) => document.getElementById(id);

const state = {
  config: null,
  mode: "camera", // or "source"
  ws: null,
  reconnectDelay: 500,
  inFlight: false,
  sentAt: 0,
  paused: false,
  alpha: 0.4,
  colormap: "jet",
  method: null,
  classId: null, // locked class, null = top class
  last: null, // the last result message
  results: 0,
  errors: 0,
  heat: null, // {canvas, key}
  smoothed: null, // {data: Float32Array, width, height, explains}
  picture: null, // what the heat is drawn over: the video element or an ImageBitmap
  pictureSize: [640, 480],
  times: { answers: [], frames: [] },
  rttLog: [], // [time, round trip] in ms, the last few thousand
  recorder: null,
  recordCanvas: null, // what is recorded: the view with the label and colour bar
  cameraError: null,
};
window.livecam = state; // for the curious, and for tests

// ------------------------------------------------------------------ start

async function start() {
  bindControls();
  bindKeys();
  await loadConfig();
  connect();
  requestAnimationFrame(draw);
  const source = Boolean(state.config && state.config.source);
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
      state.config = await response.json();
      applyConfig(state.config);
      return;
    } catch (err) {
      setConnection("server unreachable, retrying…", "down");
      await sleep(1000);
    }
  }
}

function applyConfig(config) {
  $("model").textContent = `model ${config.model} · layer ${config.layer}`;
  if (state.method === null) state.method = config.method;
  if (!state.configured) { // the first time only: a reconnect keeps what the user chose
    state.configured = true;
    state.alpha = config.alpha;
    state.colormap = config.colormap in config.colormaps ? config.colormap : "jet";
  }
  state.luts = {};
  for (const [name, b64] of Object.entries(config.colormaps)) state.luts[name] = base64Bytes(b64);
  fillSelect($("method"), config.methods, state.method);
  fillSelect($("colormap"), Object.keys(config.colormaps), state.colormap);
  $("alpha").value = state.alpha;
  $("alpha-value").textContent = `${Math.round(state.alpha * 100)}%`;
  $("mode-source").hidden = !config.source;
  if (config.source) {
    $("mode-source").title = config.source;
    $("stream-link").hidden = false;
    $("mjpeg").href = `stream.mjpg${query}`;
  }
  drawLegend();
}

// ------------------------------------------------------------------ the WebSocket

function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${query}`;
  const ws = new WebSocket(url);
  state.ws = ws;
  state.inFlight = false;
  ws.onopen = () => {
    state.reconnectDelay = 500;
    setConnection("connected", "up");
    // A new connection starts with the server's defaults: tell it this page's settings.
    ws.send(JSON.stringify({ method: state.method, class_id: state.classId }));
    if (state.mode === "source") pull();
    else sendFrame();
  };
  ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.ws = null;
    state.inFlight = false;
    const seconds = (state.reconnectDelay / 1000).toFixed(1);
    setConnection(`server gone — reconnecting in ${seconds} s…`, "down");
    notice(`The server went away (stopped or restarted, or the network dropped). Reconnecting on its own…`, "server");
    setTimeout(async () => {
      await loadConfig();
      connect();
    }, state.reconnectDelay);
    state.reconnectDelay = Math.min(5000, state.reconnectDelay * 2);
  };
}

function onMessage(message) {
  if (message.type === "result") {
    state.inFlight = false;
    if (state.mode === "camera") {
      clearNotice("server");
      state.times.rtt = performance.now() - state.sentAt;
      state.rttLog.push([performance.now(), state.times.rtt]); // for scripts/bench_serve.py
      if (state.rttLog.length > 5000) state.rttLog.splice(0, 1000);
      showResult(message);
      sendFrame(state.paused && state.reexplain);
    }
  } else if (message.type === "source_result") {
    if (state.mode === "source") {
      clearNotice("server");
      // The picture and its map change together; then ask for the next one.
      showSourceImage(message.image).then(() => {
        showResult(message);
        pull();
      });
    }
  } else if (message.type === "error") {
    state.errors += 1;
    state.inFlight = false;
    notice(`The server could not explain frame ${message.seq}: ${message.message}`, "frame");
    setTimeout(sendFrame, 200);
  } else if (message.type === "control_error" || message.type === "notice") {
    notice(message.message, "control");
  }
}

function send(data) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(data);
}

function sendControls(controls) {
  send(JSON.stringify(controls));
}

function pull() {
  if (!state.paused) sendControls({ pull: "source" });
}

// ------------------------------------------------------------------ the camera

// fallback: the page turns to the server's source if this fails (the notice says so).
async function startCamera(fallback = false) {
  if (state.video) return true;
  if (!window.isSecureContext) {
    state.cameraError = "insecure";
    insecureNotice();
    return false;
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    state.cameraError = "unsupported";
    notice("This browser offers no camera access (no getUserMedia); use a current Chrome, Firefox or Safari.", "camera");
    return false;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    video.srcObject = stream;
    await video.play();
    state.video = video;
    state.cameraError = null;
    clearNotice("camera");
    return true;
  } catch (err) {
    state.cameraError = err.name || "error";
    const alt = !(state.config && state.config.source)
      ? ""
      : fallback
        ? " Meanwhile this shows the server's source."
        : " Or watch the server's source instead.";
    if (err.name === "NotAllowedError" || err.name === "SecurityError") {
      notice(`The camera was refused. Allow it for this site (the camera icon in the address bar) and reload the page.${alt}`, "camera");
    } else if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
      notice(`No camera was found on this device. Plug one in and reload the page.${alt}`, "camera");
    } else if (err.name === "NotReadableError") {
      notice(`The camera is busy: another program or tab uses it. Close that and reload the page.${alt}`, "camera");
    } else {
      notice(`The camera could not be opened (${err.name}: ${err.message}).${alt}`, "camera");
    }
    return false;
  }
}

function insecureNotice() {
  const port = location.port || (location.protocol === "https:" ? "443" : "80");
  notice(
    `Browsers allow the camera only on HTTPS pages or on localhost, and this page is ${location.origin}. ` +
      `Either start the server with HTTPS (livecam serve --certfile cert.pem --keyfile key.pem) and open https://…, ` +
      `or open an SSH tunnel from this computer — ssh -L ${port}:localhost:${port} USER@${location.hostname} — ` +
      `and open http://localhost:${port}/${query}` +
      (state.config && state.config.source ? ". Meanwhile this shows the server's source." : "."),
    "insecure",
  );
}

// The newest camera frame; while paused (force), the frozen one again, to explain it anew.
function sendFrame(force = false) {
  const video = state.video;
  if (state.mode !== "camera" || !video || video.readyState < 2 || (state.paused && !force)) return;
  if (state.inFlight || !state.ws || state.ws.readyState !== WebSocket.OPEN) {
    if (force) state.reexplain = true; // once the answer in flight is back
    return;
  }
  const picture = state.paused ? state.frozen : video;
  if (!picture) return;
  state.reexplain = false;
  // The engine shrinks every frame to the model's input anyway: sending no more than that keeps
  // the JPEG encoding here, the upload and the decoding on the server small.
  const [inputH, inputW] = state.config ? state.config.input_size : [video.videoHeight, video.videoWidth];
  const [width, height] = [picture.videoWidth || picture.width, picture.videoHeight || picture.height];
  const scale = Math.min(1, Math.max(inputH / height, inputW / width));
  const canvas = (state.sendCanvas ||= document.createElement("canvas"));
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  canvas.getContext("2d").drawImage(picture, 0, 0, canvas.width, canvas.height);
  state.inFlight = true;
  const capturedAt = performance.now(); // the round trip counts the encoding too: the user waits for it
  canvas.toBlob(
    (blob) => {
      if (!blob || !state.ws || state.ws.readyState !== WebSocket.OPEN) {
        state.inFlight = false;
        return;
      }
      state.sentAt = capturedAt;
      state.ws.send(blob);
    },
    "image/jpeg",
    JPEG_QUALITY,
  );
}

// ------------------------------------------------------------------ the server's source

async function showSourceImage(b64) {
  const blob = new Blob([base64Bytes(b64)], { type: "image/jpeg" });
  const bitmap = await createImageBitmap(blob);
  if (state.picture && state.picture !== state.video && state.picture.close) state.picture.close();
  state.picture = bitmap;
  state.pictureSize = [bitmap.width, bitmap.height];
  state.heat = null;
}

// ------------------------------------------------------------------ results and heat

function showResult(message) {
  state.last = message;
  state.results += 1;
  const now = performance.now();
  state.times.answers.push(now);
  smooth(message);
  state.heat = null; // redrawn from the new map at the next display frame
  $("label").textContent = message.label;
  $("prob").textContent = percent(message.prob);
  $("locked").hidden = state.classId === null;
  $("unlock").disabled = state.classId === null;
  showTopk(message);
}

// The top classes as buttons made once and updated in place: answers arrive about 30 times a
// second, and a press held across one must land on the same element (a person's click, a tap,
// keyboard focus); a list rebuilt per answer loses them.
function showTopk(message) {
  const list = $("topk");
  while (list.children.length < message.topk.length) list.append(topkItem());
  while (list.children.length > message.topk.length) list.lastElementChild.remove();
  message.topk.forEach((entry, rank) => {
    const button = list.children[rank].firstElementChild;
    const text = `${entry.label} ${percent(entry.prob)}`;
    button.dataset.classId = entry.id;
    button.classList.toggle("explained", entry.id === message.class_id);
    button.setAttribute("aria-label", `${text}; explain this class`);
    button.querySelector(".bar").style.width = `${Math.max(1, entry.prob * 100)}%`;
    const label = button.querySelector(".text");
    if (label.textContent !== text) label.textContent = text;
  });
}

function topkItem() {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  const bar = document.createElement("span");
  bar.className = "bar";
  const text = document.createElement("span");
  text.className = "text";
  button.append(bar, text);
  // The class shown when the click lands, read then: the button outlives the answers.
  button.addEventListener("click", () => lockClass(Number(button.dataset.classId)));
  item.append(button);
  return item;
}

// The renderer's smoothing: out = s * previous + (1 - s) * new, restarted when the method or the
// locked class changes (the old map says nothing about the new question).
function smooth(message) {
  const cam = message.cam;
  const values = base64Bytes(cam.data);
  const explains = `${message.method}|${state.classId === null ? "" : message.class_id}`;
  const s = state.config ? state.config.smooth : 0;
  const previous = state.smoothed;
  if (!previous || s === 0 || previous.explains !== explains || previous.width !== cam.width || previous.height !== cam.height) {
    state.smoothed = { data: Float32Array.from(values), width: cam.width, height: cam.height, explains };
    return;
  }
  const data = previous.data;
  for (let i = 0; i < data.length; i++) data[i] = s * data[i] + (1 - s) * values[i];
}

// The map upsampled to the picture (the browser's smooth scaling), then painted with the
// colormap table the server's renderer uses.
function heatCanvas(width, height) {
  const key = `${width}x${height}|${state.colormap}`;
  if (state.heat && state.heat.key === key) return state.heat.canvas;
  const map = state.smoothed;
  if (!map) return null;
  const small = document.createElement("canvas");
  small.width = map.width;
  small.height = map.height;
  const smallCtx = small.getContext("2d");
  const grey = smallCtx.createImageData(map.width, map.height);
  for (let i = 0; i < map.data.length; i++) {
    const v = Math.round(map.data[i]);
    grey.data[4 * i] = grey.data[4 * i + 1] = grey.data[4 * i + 2] = v;
    grey.data[4 * i + 3] = 255;
  }
  smallCtx.putImageData(grey, 0, 0);
  const canvas = (state.heat && state.heat.canvas) || document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(small, 0, 0, width, height);
  const pixels = ctx.getImageData(0, 0, width, height);
  const lut = state.luts[state.colormap];
  const p = pixels.data;
  const heatBlend = state.config.blend === "heat";
  for (let i = 0; i < p.length; i += 4) {
    const v = 3 * p[i];
    // heat blend: the opacity follows the map (alpha * map), so cold parts show the picture as it is
    p[i + 3] = heatBlend ? p[i] : 255;
    p[i] = lut[v];
    p[i + 1] = lut[v + 1];
    p[i + 2] = lut[v + 2];
  }
  ctx.putImageData(pixels, 0, 0);
  state.heat = { canvas, key };
  return canvas;
}

// ------------------------------------------------------------------ the display

function draw() {
  requestAnimationFrame(draw);
  const view = $("view");
  const ctx = view.getContext("2d");
  let picture = null;
  let width = 0;
  let height = 0;
  if (state.mode === "camera" && state.paused && state.frozen) {
    picture = state.frozen;
    [width, height] = [state.frozen.width, state.frozen.height];
  } else if (state.mode === "camera" && state.video && state.video.readyState >= 2) {
    picture = state.video;
    width = state.video.videoWidth;
    height = state.video.videoHeight;
  } else if (state.mode === "source" && state.picture) {
    picture = state.picture;
    [width, height] = state.pictureSize;
  }
  if (!picture) return;
  if (view.width !== width || view.height !== height) {
    view.width = width;
    view.height = height;
  }
  ctx.globalAlpha = 1;
  ctx.drawImage(picture, 0, 0, width, height);
  // Where the map lies on the picture (--fit): the central crop only, or past its edges over the padding (clipped).
  const [x0, y0, x1, y1] = (state.last && state.last.box) || [0, 0, 1, 1];
  const heat = state.last ? heatCanvas(Math.max(1, Math.round((x1 - x0) * width)), Math.max(1, Math.round((y1 - y0) * height))) : null;
  if (heat && state.alpha > 0) {
    ctx.globalAlpha = state.alpha; // as the renderer blends: opacity alpha (times the map with --blend heat)
    ctx.drawImage(heat, Math.round(x0 * width), Math.round(y0 * height));
    ctx.globalAlpha = 1;
  }
  if (state.recordCanvas) fileFrame(state.recordCanvas);
  const now = performance.now();
  state.times.frames.push(now);
  if (state.mode === "camera") sendFrame(); // in case nothing is in flight (first frame, after a reconnect)
  showStats(now);
}

function showStats(now) {
  const keep = (list) => {
    while (list.length && now - list[0] > 2000) list.shift();
    return list.length > 1 ? (1000 * (list.length - 1)) / (list[list.length - 1] - list[0]) : 0;
  };
  const answers = keep(state.times.answers);
  const frames = keep(state.times.frames);
  if (!state.last) return;
  const ms = state.last.ms;
  const rtt = state.mode === "camera" && state.times.rtt ? ` · round trip ${state.times.rtt.toFixed(0)} ms` : "";
  $("stats").textContent =
    `${state.last.method} @ ${state.last.layer} · engine ${ms.engine.toFixed(0)} ms${rtt} · ` +
    `${answers.toFixed(1)} maps/s · display ${frames.toFixed(0)} fps`;
}

function drawLegend() {
  const canvas = $("legend");
  const ctx = canvas.getContext("2d");
  const lut = state.luts[state.colormap];
  const image = ctx.createImageData(256, canvas.height);
  for (let y = 0; y < canvas.height; y++) {
    for (let x = 0; x < 256; x++) {
      const i = 4 * (y * 256 + x);
      image.data.set([lut[3 * x], lut[3 * x + 1], lut[3 * x + 2], 255], i);
    }
  }
  ctx.putImageData(image, 0, 0);
}

// ------------------------------------------------------------------ controls

function bindControls() {
  $("mode-camera").addEventListener("click", () => setMode("camera"));
  $("mode-source").addEventListener("click", () => setMode("source"));
  $("method").addEventListener("change", (e) => setMethod(e.target.value));
  $("colormap").addEventListener("change", (e) => {
    state.colormap = e.target.value;
    state.heat = null;
    drawLegend();
  });
  $("alpha").addEventListener("input", (e) => setAlpha(Number(e.target.value)));
  $("unlock").addEventListener("click", () => lockClass(null));
  $("pause").addEventListener("click", togglePause);
  $("snapshot").addEventListener("click", snapshot);
  $("record").addEventListener("click", toggleRecording);
  $("fullscreen").addEventListener("click", toggleFullscreen);
  $("fullscreen").hidden = !document.fullscreenEnabled;
  document.addEventListener("fullscreenchange", () => $("fullscreen").setAttribute("aria-pressed", String(Boolean(document.fullscreenElement))));
  $("keys").addEventListener("click", toggleHelp);
}

function setMethod(method) {
  state.method = method;
  $("method").value = method;
  sendControls({ method });
  sendFrame(true); // while paused, the frozen frame is explained again
}

function setAlpha(alpha) {
  state.alpha = alpha;
  $("alpha").value = alpha;
  $("alpha-value").textContent = `${Math.round(alpha * 100)}%`;
}

// Returns whether the camera started (mode "camera"); keepNotice leaves the camera's notice up.
async function setMode(mode, { fallback = false, keepNotice = false } = {}) {
  state.mode = mode;
  $("mode-camera").setAttribute("aria-pressed", String(mode === "camera"));
  $("mode-source").setAttribute("aria-pressed", String(mode === "source"));
  state.last = null;
  state.smoothed = null;
  state.heat = null;
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
  state.classId = classId;
  sendControls({ class_id: classId });
  sendFrame(true); // while paused, the frozen frame is explained again
  $("locked").hidden = classId === null;
  $("unlock").disabled = classId === null;
}

function togglePause() {
  state.paused = !state.paused;
  if (state.paused && state.mode === "camera" && state.video && state.video.readyState >= 2) {
    // The frozen picture: the heat, opacity and colormap can still change over it.
    const frozen = document.createElement("canvas");
    frozen.width = state.video.videoWidth;
    frozen.height = state.video.videoHeight;
    frozen.getContext("2d").drawImage(state.video, 0, 0);
    state.frozen = frozen;
  }
  $("pause").setAttribute("aria-pressed", String(state.paused));
  $("pause").textContent = state.paused ? "Resume" : "Pause";
  if (!state.paused) {
    if (state.mode === "camera") sendFrame();
    else pull();
  }
}

function snapshot() {
  const view = $("view");
  const canvas = document.createElement("canvas");
  canvas.width = view.width;
  canvas.height = view.height;
  fileFrame(canvas).toBlob((blob) => download(blob, `livecam-${stamp()}.png`), "image/png");
}

function toggleRecording() {
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  if (!window.MediaRecorder) {
    notice("This browser cannot record a canvas (no MediaRecorder).", "record");
    return;
  }
  // A canvas of its own, drawn at every display frame with the label and colour bar; its size is
  // the view's at the start, so the video keeps one size when the picture changes.
  const canvas = document.createElement("canvas");
  canvas.width = $("view").width;
  canvas.height = $("view").height;
  state.recordCanvas = fileFrame(canvas);
  const type = ["video/webm;codecs=vp9", "video/webm;codecs=vp8", "video/webm", "video/mp4"].find((t) => MediaRecorder.isTypeSupported(t));
  const recorder = new MediaRecorder(canvas.captureStream(30), type ? { mimeType: type } : {});
  const chunks = [];
  let startedAt = performance.now();
  recorder.onstart = () => (startedAt = performance.now());
  recorder.ondataavailable = (e) => e.data.size && chunks.push(e.data);
  recorder.onstop = async () => {
    const ms = performance.now() - startedAt;
    state.recorder = null;
    state.recordCanvas = null;
    $("rec").hidden = true;
    $("record").textContent = "Record";
    $("record").setAttribute("aria-pressed", "false");
    const kind = recorder.mimeType || "video/webm";
    const mp4 = kind.includes("mp4");
    const video = new Blob(chunks, { type: kind });
    download(mp4 ? video : await withDuration(video, ms), `livecam-${stamp()}.${mp4 ? "mp4" : "webm"}`);
  };
  recorder.start(1000);
  state.recorder = recorder;
  $("rec").hidden = false;
  $("record").textContent = "Stop and save";
  $("record").setAttribute("aria-pressed", "true");
}

// ------------------------------------------------------------------ keys

// The window's keys (README's Keys table, livecam/viewer/keys.py) on the page. Not while typing in a
// field; Space and Enter on a focused button or link press it, as everywhere on the web.
const KEY_ACTIONS = {
  " ": togglePause,
  m: nextMethod,
  0: () => lockClass(null),
  1: lockRank,
  2: lockRank,
  3: lockRank,
  4: lockRank,
  5: lockRank,
  "[": () => stepAlpha(-1),
  "]": () => stepAlpha(1),
  s: snapshot,
  r: toggleRecording,
  f: toggleFullscreen,
  h: toggleHelp,
};
const REPEATING_KEYS = new Set(["[", "]"]); // held down, they keep stepping; the others act once

function bindKeys() {
  document.addEventListener("keydown", onKey);
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return; // the browser's own shortcuts
  const target = event.target instanceof Element ? event.target : null;
  if (target && target.closest("input, select, textarea, [contenteditable]")) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (key === " " && target && target.closest("button, a")) return;
  const action = Object.hasOwn(KEY_ACTIONS, key) ? KEY_ACTIONS[key] : null;
  if (!action) return;
  event.preventDefault(); // Space would scroll the page
  if (!event.repeat || REPEATING_KEYS.has(key)) action(key);
}

function nextMethod() {
  if (!state.config) return;
  const methods = state.config.methods;
  setMethod(methods[(methods.indexOf(state.method) + 1) % methods.length]);
}

// Keys 1-5: the k-th of the top classes shown.
function lockRank(key) {
  const entry = state.last && state.last.topk[Number(key) - 1];
  if (entry) lockClass(entry.id);
}

function stepAlpha(steps) {
  const step = state.config ? state.config.alpha_step : 0.1;
  // Rounded as the window does, so repeated steps stay on the grid (0.1 + 0.2 is not 0.3 in floating point).
  setAlpha(Math.min(1, Math.max(0, Math.round((state.alpha + steps * step) * 1e6) / 1e6)));
}

// The stage (the picture with its badges and notices) fills the screen; Esc leaves, as does f.
function toggleFullscreen() {
  if (document.fullscreenElement) {
    document.exitFullscreen();
  } else if (document.fullscreenEnabled) {
    $("view").parentElement.requestFullscreen().catch((err) => notice(`Fullscreen was refused: ${err.message}`, "fullscreen"));
  }
}

function toggleHelp() {
  $("help").hidden = !$("help").hidden;
  $("keys").setAttribute("aria-pressed", String(!$("help").hidden));
}

// ------------------------------------------------------------------ what files show

// Snapshots and recordings look like the CLI's (--hud label): the picture with its heat, the label
// with its probability top left (yellow with a padlock when locked), the colour bar bottom right.
// The sizes follow the renderer's: text about 2 % of the frame height.
function fileFrame(canvas) {
  const view = $("view");
  const ctx = canvas.getContext("2d");
  const [width, height] = [canvas.width, canvas.height];
  const scale = Math.min(width / view.width, height / view.height);
  const [w, h] = [view.width * scale, view.height * scale];
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(view, (width - w) / 2, (height - h) / 2, w, h);
  const small = Math.max(10, Math.round(height / 38)); // the renderer's small text, in pixels
  const font = { small, big: Math.round(small * 1.75), pad: Math.max(2, Math.round(small / 2.5)) };
  if (state.last) drawFileLabel(ctx, font);
  if (state.luts && state.luts[state.colormap]) drawFileLegend(ctx, width, height, font);
  return canvas;
}

const HUD_WHITE = "rgb(235, 235, 235)";
const HUD_YELLOW = "rgb(255, 215, 0)";
const HUD_PANEL = "rgba(0, 0, 0, 0.65)"; // the renderer's panels keep 35 % of the picture beneath

function drawFileLabel(ctx, font) {
  const { label, prob } = state.last;
  const locked = state.classId !== null;
  const text = `${label.length > 40 ? `${label.slice(0, 37)}...` : label}  ${percent(prob)}`;
  ctx.font = `bold ${font.big}px sans-serif`;
  ctx.textBaseline = "alphabetic";
  const lockW = locked ? Math.round(font.big * 0.9) : 0;
  const [x0, y0] = [font.pad, font.pad];
  const panelW = Math.min(ctx.canvas.width - 2 * font.pad, lockW + ctx.measureText(text).width + 2 * font.pad);
  const panelH = Math.round(font.big * 1.3) + 2 * font.pad;
  ctx.fillStyle = HUD_PANEL;
  ctx.fillRect(x0, y0, panelW, panelH);
  const baseline = y0 + font.pad + Math.round(font.big * 1.05);
  ctx.fillStyle = locked ? HUD_YELLOW : HUD_WHITE;
  if (locked) drawPadlock(ctx, x0 + font.pad, baseline, Math.round(font.big * 0.75));
  ctx.fillText(text, x0 + font.pad + lockW, baseline, panelW - 2 * font.pad - lockW);
}

// A small padlock standing on the text baseline, ``size`` pixels high, as the renderer draws it.
function drawPadlock(ctx, x, baseline, size) {
  const bodyH = Math.max(3, Math.round((size * 11) / 20));
  const bodyW = Math.max(4, Math.round((size * 3) / 4));
  ctx.fillRect(x, baseline - bodyH, bodyW, bodyH);
  ctx.beginPath();
  ctx.lineWidth = Math.max(1, size / 8);
  ctx.strokeStyle = ctx.fillStyle;
  ctx.ellipse(x + bodyW / 2, baseline - bodyH, Math.max(2, bodyW * 0.3), Math.max(2, size - bodyH), 0, Math.PI, 2 * Math.PI);
  ctx.stroke();
}

function drawFileLegend(ctx, width, height, font) {
  const barW = Math.max(40, Math.min(Math.round(width / 5), 9 * font.small));
  const barH = Math.max(4, Math.round(font.small / 2));
  const panelW = barW + 2 * font.pad;
  const panelH = Math.round(font.small * 1.3) + barH + 2 * font.pad;
  const [x1, y1] = [width - font.pad, height - font.pad];
  const [x0, y0] = [x1 - panelW, y1 - panelH];
  if (x0 < 0 || y0 < 0) return;
  ctx.fillStyle = HUD_PANEL;
  ctx.fillRect(x0, y0, panelW, panelH);
  ctx.font = `${font.small}px sans-serif`;
  ctx.fillStyle = HUD_WHITE;
  ctx.textBaseline = "top";
  ctx.fillText("low", x0 + font.pad, y0 + font.pad);
  ctx.textAlign = "right";
  ctx.fillText("high", x1 - font.pad, y0 + font.pad);
  ctx.textAlign = "left";
  const lut = state.luts[state.colormap];
  const ramp = new ImageData(256, 1);
  for (let i = 0; i < 256; i++) ramp.data.set([lut[3 * i], lut[3 * i + 1], lut[3 * i + 2], 255], 4 * i);
  const strip = (state.legendStrip ||= document.createElement("canvas"));
  strip.width = 256;
  strip.height = 1;
  strip.getContext("2d").putImageData(ramp, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(strip, x0 + font.pad, y1 - font.pad - barH, barW, barH);
}

// ------------------------------------------------------------------ WebM duration

// MediaRecorder writes a live WebM: its Segment Info has no Duration, so players show no length
// and seek badly. Once recording stops, the Duration element is added to Info. Only the file's
// head is rewritten; the bytes after Info move, which is safe while nothing points at them (no
// SeekHead or Cues before the first Cluster, as Chrome and Firefox write it) — otherwise, or for
// anything unexpected, the file is left as it was.
const EBML_HEADER = 0x1a45dfa3;
const EBML_SEGMENT = 0x18538067;
const EBML_INFO = 0x1549a966;
const EBML_TIMECODE_SCALE = 0x2ad7b1;
const EBML_DURATION = 0x4489;
const EBML_SEEK_HEAD = 0x114d9b74;
const EBML_CLUSTER = 0x1f43b675;

async function withDuration(blob, ms) {
  try {
    const head = new Uint8Array(await blob.slice(0, 1 << 16).arrayBuffer());
    const patched = webmWithDuration(head, ms);
    return patched ? new Blob([patched.head, blob.slice(patched.rest)], { type: blob.type }) : blob;
  } catch (err) {
    return blob; // a video without its length beats none
  }
}

// {head: the new bytes up to the end of Info, rest: where the old file goes on}, or null.
function webmWithDuration(bytes, ms) {
  const header = ebmlElement(bytes, 0);
  if (!header || header.id !== EBML_HEADER || header.unknown) return null;
  const segment = ebmlElement(bytes, header.end);
  if (!segment || segment.id !== EBML_SEGMENT) return null;
  for (let pos = segment.start; pos < bytes.length; ) {
    const child = ebmlElement(bytes, pos);
    if (!child || child.unknown || child.id === EBML_SEEK_HEAD || child.id === EBML_CLUSTER) return null;
    if (child.id === EBML_INFO) {
      if (child.end > bytes.length) return null;
      let scale = 1e6; // ns per Duration unit: the default TimecodeScale
      for (let at = child.start; at < child.end; ) {
        const item = ebmlElement(bytes, at);
        if (!item || item.end > child.end || item.id === EBML_DURATION) return null;
        if (item.id === EBML_TIMECODE_SCALE) scale = ebmlUint(bytes, item.start, item.end);
        at = item.end;
      }
      const duration = new Uint8Array(11);
      duration.set([0x44, 0x89, 0x88]); // the ID, then the size 8 as a one-byte vint
      new DataView(duration.buffer).setFloat64(3, (ms * 1e6) / scale);
      const size = ebmlSize(child.end - child.start + duration.length);
      const info = concatBytes([bytes.subarray(pos, child.sizeAt), size, bytes.subarray(child.start, child.end), duration]);
      const before = bytes.slice(0, pos);
      if (!segment.unknown) {
        // A Segment of known size grows by as much; its size field keeps its width.
        const grown = ebmlSize(segment.size + info.length - (child.end - pos), segment.start - segment.sizeAt);
        if (!grown) return null;
        before.set(grown, segment.sizeAt);
      }
      return { head: concatBytes([before, info]), rest: child.end };
    }
    pos = child.end;
  }
  return null;
}

// One element's header at pos: {id, sizeAt, start (of its data), size, end, unknown (size)}; null if cut short.
function ebmlElement(bytes, pos) {
  const idLength = vintLength(bytes[pos]);
  if (!idLength || idLength > 4 || pos + idLength > bytes.length) return null;
  const id = ebmlUint(bytes, pos, pos + idLength);
  const sizeAt = pos + idLength;
  const sizeLength = vintLength(bytes[sizeAt]);
  if (!sizeLength || sizeAt + sizeLength > bytes.length) return null;
  let size = bytes[sizeAt] & (0xff >> sizeLength);
  let unknown = size === 0xff >> sizeLength;
  for (let i = 1; i < sizeLength; i++) {
    size = size * 256 + bytes[sizeAt + i];
    unknown &&= bytes[sizeAt + i] === 0xff;
  }
  const start = sizeAt + sizeLength;
  return { id, sizeAt, start, size, end: start + size, unknown };
}

function vintLength(first) {
  return first ? Math.clz32(first) - 23 : 0; // 1 for 0b1xxxxxxx ... 8 for 0b00000001; 0: none
}

function ebmlUint(bytes, start, end) {
  let value = 0;
  for (let i = start; i < end; i++) value = value * 256 + bytes[i];
  return value;
}

// A size as a vint of ``width`` bytes (8 unless given); null when it does not fit.
function ebmlSize(value, width = 8) {
  if (value >= 2 ** (7 * width) - 1) return null; // all ones would mean "unknown"
  const out = new Uint8Array(width);
  for (let i = width - 1, v = value; i >= 0; i--, v = Math.floor(v / 256)) out[i] = v % 256;
  out[0] |= 0x80 >> (width - 1);
  return out;
}

function concatBytes(parts) {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

// ------------------------------------------------------------------ helpers

function notice(text, kind = "") {
  const box = $("notice");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
}

function clearNotice(kind) {
  const box = $("notice");
  if (!box.hidden && box.dataset.kind === kind) box.hidden = true;
}

function setConnection(text, kind) {
  const el = $("connection");
  el.textContent = text;
  el.dataset.state = kind;
}

function fillSelect(select, values, selected) {
  select.replaceChildren(...values.map((v) => new Option(v, v, false, v === selected)));
}

function base64Bytes(b64) {
  const text = atob(b64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

function percent(p) {
  // One rounding for every probability, as the renderer's HUD: 0.1 %, never "100.0%" or "0.0%" for what is not.
  if (!Number.isFinite(p)) return "--%";
  if (p >= 1) return "100%";
  const text = `${(100 * p).toFixed(1)}%`;
  if (text === "100.0%") return ">99.9%";
  if (text === "0.0%" && p > 0) return "<0.1%";
  return text;
}

function download(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

function stamp() {
  return new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

start();
