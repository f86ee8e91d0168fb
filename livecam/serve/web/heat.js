// The heat map drawn here, from the small map each answer carries (it saves the bandwidth of a
// coloured picture): smoothed over answers, upsampled by the browser, painted with the renderer's
// colormap table and laid over the picture where the answer's box says.

const here = new URL(import.meta.url).search; // the page's token: every URL of this server needs it
const { blendInto, heatLayers, smoothInto } = await import(`./rules.js${here}`);

export class HeatLayer {
  constructor(rules) {
    this.rules = rules; // from rules.js: rulesFrom(config)
    this.smoothed = null; // {data: Float32Array (0..255), width, height, explains}
    this.cached = null; // {key, lut, layers}: what the blend needs at one size, opacity and colormap
    this.scratch = null; // a canvas for upsampling
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
    this.cached = null; // redrawn from the new map at the next display frame
  }

  // Blends the heat into the picture already on ctx's canvas (width x height), in the answer's
  // box ([x0, y0, x1, y1] as fractions; the map may reach past the picture with --fit pad).
  // The blend is the renderer's, pixel for pixel, so the page shows what the window shows.
  draw(ctx, width, height, box, alpha, lut) {
    const [x0, y0, x1, y1] = box || [0, 0, 1, 1];
    const [w, h] = [Math.max(1, Math.round((x1 - x0) * width)), Math.max(1, Math.round((y1 - y0) * height))];
    const layers = alpha > 0 ? this.layers(w, h, alpha, lut) : null;
    if (!layers) return;
    const [left, top] = [Math.round(x0 * width), Math.round(y0 * height)];
    const region = ctx.getImageData(left, top, w, h); // past the canvas: blended, then clipped by putImageData
    blendInto(region.data, layers);
    ctx.putImageData(region, left, top);
  }

  // What the blend needs at width x height: the map upsampled (the browser's smooth scaling),
  // painted with the colormap table, and its opacity; made once per map, size, opacity and colormap.
  layers(width, height, alpha, lut) {
    const key = `${width}x${height}|${alpha}`;
    if (this.cached && this.cached.key === key && this.cached.lut === lut) return this.cached.layers;
    const map = this.smoothed;
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
    const canvas = (this.scratch ||= document.createElement("canvas"));
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(small, 0, 0, width, height);
    const colour = ctx.getImageData(0, 0, width, height).data;
    const values = new Uint8Array(width * height);
    for (let i = 0; i < values.length; i++) {
      const v = (values[i] = colour[4 * i]);
      colour[4 * i] = lut[3 * v];
      colour[4 * i + 1] = lut[3 * v + 1];
      colour[4 * i + 2] = lut[3 * v + 2];
    }
    const layers = heatLayers(colour, values, alpha, this.rules);
    this.cached = { key, lut, layers };
    return layers;
  }
}

export function base64Bytes(b64) {
  const text = atob(b64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}
