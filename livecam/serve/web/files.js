// What the page saves: snapshots (PNG) and recordings (WebM, with its length), drawn like the
// CLI's files (--hud label): the picture with its heat, the label with its probability top left
// (yellow with a padlock when locked), the colour bar bottom right. The sizes follow the
// renderer's: text about 2 % of the frame height.

const here = new URL(import.meta.url).search; // the page's token: every URL of this server needs it
const { withDuration } = await import(`./webm.js${here}`);

const HUD_WHITE = "rgb(235, 235, 235)";
const HUD_YELLOW = "rgb(255, 215, 0)";
const HUD_PANEL = "rgba(0, 0, 0, 0.65)"; // the renderer's panels keep 35 % of the picture beneath

// view: the page's canvas. hud(): {label, prob, locked, lut} for the files' HUD, label null before
// the first answer, lut null before the config. format(p): the percent text.
export class Files {
  constructor(view, hud, format) {
    this.view = view;
    this.hud = hud;
    this.format = format;
    this.recorder = null;
    this.recordCanvas = null; // what is recorded: the view with the label and colour bar
    this.legendStrip = null;
  }

  get recording() {
    return this.recorder !== null;
  }

  snapshot() {
    const canvas = document.createElement("canvas");
    canvas.width = this.view.width;
    canvas.height = this.view.height;
    this.frame(canvas).toBlob((blob) => download(blob, `livecam-${stamp()}.png`), "image/png");
  }

  // Called at every display frame: the recording gets the view as drawn.
  drawn() {
    if (this.recordCanvas) this.frame(this.recordCanvas);
  }

  // Starts a recording, or stops it and saves it: onChange(recording) says which; onError(text) when it cannot.
  toggleRecording(onChange, onError) {
    if (this.recorder) {
      this.recorder.stop();
      return;
    }
    if (!window.MediaRecorder) {
      onError("This browser cannot record a canvas (no MediaRecorder).");
      return;
    }
    // A canvas of its own, drawn at every display frame with the label and colour bar; its size is
    // the view's at the start, so the video keeps one size when the picture changes.
    const canvas = document.createElement("canvas");
    canvas.width = this.view.width;
    canvas.height = this.view.height;
    this.recordCanvas = this.frame(canvas);
    const type = ["video/webm;codecs=vp9", "video/webm;codecs=vp8", "video/webm", "video/mp4"].find((t) => MediaRecorder.isTypeSupported(t));
    const recorder = new MediaRecorder(canvas.captureStream(30), type ? { mimeType: type } : {});
    const chunks = [];
    let startedAt = performance.now();
    recorder.onstart = () => (startedAt = performance.now());
    recorder.ondataavailable = (e) => e.data.size && chunks.push(e.data);
    recorder.onstop = async () => {
      const ms = performance.now() - startedAt;
      this.recorder = null;
      this.recordCanvas = null;
      onChange(false);
      const kind = recorder.mimeType || "video/webm";
      const mp4 = kind.includes("mp4");
      const video = new Blob(chunks, { type: kind });
      download(mp4 ? video : await withDuration(video, ms), `livecam-${stamp()}.${mp4 ? "mp4" : "webm"}`);
    };
    recorder.start(1000);
    this.recorder = recorder;
    onChange(true);
  }

  // The view drawn on `canvas` (scaled to fit) with the label and the colour bar.
  frame(canvas) {
    const view = this.view;
    const ctx = canvas.getContext("2d");
    const [width, height] = [canvas.width, canvas.height];
    const scale = Math.min(width / view.width, height / view.height);
    const [w, h] = [view.width * scale, view.height * scale];
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, width, height);
    ctx.drawImage(view, (width - w) / 2, (height - h) / 2, w, h);
    const font = hudFont(height);
    const hud = this.hud();
    if (hud.label !== null) drawLabel(ctx, font, `${shortName(hud.label)}  ${this.format(hud.prob)}`, hud.locked);
    if (hud.lut) this.drawLegend(ctx, width, height, font, hud.lut);
    return canvas;
  }

  drawLegend(ctx, width, height, font, lut) {
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
    const ramp = new ImageData(256, 1);
    for (let i = 0; i < 256; i++) ramp.data.set([lut[3 * i], lut[3 * i + 1], lut[3 * i + 2], 255], 4 * i);
    const strip = (this.legendStrip ||= document.createElement("canvas"));
    strip.width = 256;
    strip.height = 1;
    strip.getContext("2d").putImageData(ramp, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(strip, x0 + font.pad, y1 - font.pad - barH, barW, barH);
  }
}

// The renderer's text sizes for a picture `height` pixels high: small text about 2.6 % of it.
export function hudFont(height) {
  const small = Math.max(10, Math.round(height / 38)); // the renderer's small text, in pixels
  return { small, big: Math.round(small * 1.75), pad: Math.max(2, Math.round(small / 2.5)) };
}

// A class name cut to 40 characters, as the renderer's HUD cuts it.
export function shortName(label) {
  return label.length > 40 ? `${label.slice(0, 37)}...` : label;
}

// The label's panel, top left: `text` in big bold type, yellow after a padlock when `locked`.
export function drawLabel(ctx, font, text, locked = false) {
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

// A line of small text in its panel, bottom left (a side-by-side panel's title).
export function drawCaption(ctx, font, text) {
  ctx.font = `${font.small}px sans-serif`;
  ctx.textBaseline = "alphabetic";
  const panelW = Math.min(ctx.canvas.width - 2 * font.pad, ctx.measureText(text).width + 2 * font.pad);
  const panelH = Math.round(font.small * 1.3) + 2 * font.pad;
  const [x0, y0] = [font.pad, ctx.canvas.height - font.pad - panelH];
  ctx.fillStyle = HUD_PANEL;
  ctx.fillRect(x0, y0, panelW, panelH);
  ctx.fillStyle = HUD_WHITE;
  ctx.fillText(text, x0 + font.pad, y0 + font.pad + Math.round(font.small * 1.0), panelW - 2 * font.pad);
}

// The region box's readout, as the window's draw_region places it: small text in its panel above
// the box at (x, y) (inside its top edge where there is no room above), kept on the picture.
export function drawReadout(ctx, font, x, y, text) {
  ctx.font = `${font.small}px sans-serif`;
  ctx.textBaseline = "alphabetic";
  const width = ctx.canvas.width;
  const lineH = Math.round(font.small * 1.3);
  const panelW = Math.min(width, ctx.measureText(text).width + 2 * font.pad);
  const left = Math.min(Math.max(0, x), Math.max(0, width - panelW));
  const top = y - lineH - font.pad >= 0 ? y - lineH - font.pad : y + font.pad;
  ctx.fillStyle = HUD_PANEL;
  ctx.fillRect(left, top, panelW, lineH);
  ctx.fillStyle = HUD_WHITE;
  ctx.fillText(text, left + font.pad, top + Math.round(font.small * 1.0), panelW - 2 * font.pad);
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
