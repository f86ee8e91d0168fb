// The heat map drawn here, from the small map each answer carries (it saves the bandwidth of a
// coloured picture): smoothed over answers, upsampled by the browser, painted with the renderer's
// colormap table and laid over the picture where the answer's box says.
//
// As the renderer does (render/renderer.py, _MapHeat), the layer is painted at the bicubic step's
// resolution (at most rules.cubicStep pixels per map cell), once per map, and stretched bilinearly
// over the picture when drawn: each display frame is then one drawImage, the canvas's own blend,
// not a read-back of the picture and a loop over its pixels.

const here = new URL(import.meta.url).search; // the page's token: every URL of this server needs it
const { blendUniform, heatTable, smoothInto } = await import(`./rules.js${here}`);

export class HeatLayer {
  constructor(rules) {
    this.rules = rules; // from rules.js: rulesFrom(config)
    this.smoothed = null; // {data: Float32Array (0..255), width, height, explains}
    this.cached = null; // {key, lut, canvas}: the painted layer for one size, opacity and colormap
    this.table = null; // {lut, alpha, blend, heatLevels, words}: heatTable's, as one RGBA word per map value
    this.canvases = {}; // reused: the map as a picture, the map upsampled, the painted layer
  }

  // Forgets the maps (a new picture source: the old maps say nothing about it).
  reset() {
    this.smoothed = null;
    this.cached = null;
  }

  // Folds one answer's map in. `explains` says what it answers (method and locked class): the
  // smoothing restarts when it changes, as the renderer's does.
  update(cam, explains) {
    const values = base64Bytes(cam.data);
    const previous = this.smoothed;
    const same = previous && previous.explains === explains && previous.width === cam.width && previous.height === cam.height;
    const data = smoothInto(same ? previous.data : null, values, this.rules.smooth);
    this.smoothed = { data, width: cam.width, height: cam.height, explains };
    this.cached = null; // painted from the new map at the next display frame
  }

  // Blends the heat over the picture already on ctx's canvas (width x height), in the answer's
  // box ([x0, y0, x1, y1] as fractions; the map may reach past the picture with --fit pad).
  // Heat blend: the layer's alpha is the blend's weight w, so the canvas's source-over is the
  // renderer's blend_layers, picture * (255 - w) / 255 + colour * w / 255 (the canvas
  // premultiplies the colour by w as heat_layers does; its 8-bit arithmetic keeps the picture's
  // part within 1 level of the renderer's). The uniform blend is blended here, per pixel.
  draw(ctx, width, height, box, alpha, lut) {
    if (!(alpha > 0)) return;
    const [x0, y0, x1, y1] = box || [0, 0, 1, 1];
    const [w, h] = [Math.max(1, Math.round((x1 - x0) * width)), Math.max(1, Math.round((y1 - y0) * height))];
    const [left, top] = [Math.round(x0 * width), Math.round(y0 * height)];
    const layer = this.layer(w, h, alpha, lut);
    if (!layer) return;
    if (this.rules.blend !== "heat") {
      const region = ctx.getImageData(left, top, w, h); // past the canvas: blended, then clipped by putImageData
      blendUniform(region.data, this.stretched(layer, w, h), alpha);
      ctx.putImageData(region, left, top);
      return;
    }
    ctx.save();
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "low"; // bilinear, as the renderer resizes its layers to the frame
    ctx.drawImage(layer, left, top, w, h);
    ctx.restore();
  }

  // The painted layer for a width x height box: the map upsampled to the bicubic step's
  // resolution (the browser's smooth scaling), each value replaced by its colour and weight.
  layer(width, height, alpha, lut) {
    const key = `${width}x${height}|${alpha}|${this.rules.blend}`;
    if (this.cached && this.cached.key === key && this.cached.lut === lut) return this.cached.canvas;
    const map = this.smoothed;
    if (!map) return null;
    const step = this.rules.cubicStep;
    const [w, h] = [Math.min(width, step * map.width), Math.min(height, step * map.height)];
    const canvas = this.canvasOf("layer", w, h);
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(w, h);
    const pixels = new Uint32Array(image.data.buffer);
    const words = this.words(lut, alpha);
    const values = this.valuesAt(w, h);
    for (let i = 0; i < pixels.length; i++) pixels[i] = words[values[i]];
    ctx.putImageData(image, 0, 0);
    this.cached = { key, lut, canvas, stretched: null };
    return canvas;
  }

  // The (opaque) layer's RGBA at w x h, for the uniform blend: made once per layer.
  stretched(layer, w, h) {
    if (!this.cached.stretched) {
      const ctx = this.canvasOf("stretched", w, h).getContext("2d", { willReadFrequently: true });
      ctx.imageSmoothingEnabled = true;
      ctx.imageSmoothingQuality = "low"; // bilinear, as the renderer resizes its colours to the frame
      ctx.drawImage(layer, 0, 0, w, h);
      this.cached.stretched = ctx.getImageData(0, 0, w, h).data;
    }
    return this.cached.stretched;
  }

  // The smoothed map (0..255) at w x h: itself at its own size, else scaled by the browser.
  valuesAt(w, h) {
    const map = this.smoothed;
    const rounded = Uint8Array.from(map.data, Math.round);
    if (w === map.width && h === map.height) return rounded;
    const grey = new ImageData(map.width, map.height);
    const g = grey.data;
    for (let i = 0; i < rounded.length; i++) {
      g[4 * i] = g[4 * i + 1] = g[4 * i + 2] = rounded[i];
      g[4 * i + 3] = 255;
    }
    const small = this.canvasOf("small", map.width, map.height);
    small.getContext("2d").putImageData(grey, 0, 0);
    const ctx = this.canvasOf("scaled", w, h).getContext("2d", { willReadFrequently: true });
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high"; // the renderer's step is bicubic
    ctx.drawImage(small, 0, 0, w, h);
    const rgba = ctx.getImageData(0, 0, w, h).data;
    const values = new Uint8Array(w * h);
    for (let i = 0; i < values.length; i++) values[i] = rgba[4 * i];
    return values;
  }

  // heatTable's bytes as one 32-bit word per map value (the bytes in memory order, as ImageData
  // holds them), made once per colormap, opacity and blend.
  words(lut, alpha) {
    const { blend, heatLevels } = this.rules;
    const t = this.table;
    if (t && t.lut === lut && t.alpha === alpha && t.blend === blend && t.heatLevels === heatLevels) return t.words;
    const words = new Uint32Array(heatTable(lut, alpha, this.rules).buffer);
    this.table = { lut, alpha, blend, heatLevels, words };
    return words;
  }

  canvasOf(name, width, height) {
    const canvas = (this.canvases[name] ||= document.createElement("canvas"));
    if (canvas.width !== width) canvas.width = width;
    if (canvas.height !== height) canvas.height = height;
    return canvas;
  }
}

export function base64Bytes(b64) {
  const text = atob(b64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}
