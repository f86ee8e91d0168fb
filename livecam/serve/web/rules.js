// The viewer's rules, as the window's renderer writes them (livecam/render, livecam/viewer/control.py):
// smoothing, the heat opacity, the opacity keys and the percent text. Pure functions, no page:
// tests/test_serve_browser.py runs them on the same inputs as the Python code and compares.
// Their constants come from /api/config, so the two front-ends cannot drift apart.

// The constants, from the server's `rules` when it sends them, else from the older top-level keys.
export function rulesFrom(config) {
  const rules = config.rules || {};
  const pick = (name, fallback) => (name in rules ? rules[name] : fallback);
  return Object.freeze({
    smooth: pick("smooth", config.smooth), // weight of the past per new map, in [0, 1)
    blend: pick("blend", config.blend), // "heat": opacity alpha * map; "uniform": alpha everywhere
    alphaStep: pick("alpha_step", config.alpha_step), // what [ and ] add to the opacity
    percent: Object.freeze({ ...PERCENT, ...(rules.percent || {}) }), // the percent text (render's PERCENT)
    heatLevels: pick("heat_levels", 255), // the heat blend's opacity steps per pixel (render's HEAT_LEVELS)
    cubicStep: pick("cubic_step", 16), // the heat is painted at most this many pixels per map cell (render's CUBIC_STEP)
    alphaDecimals: pick("alpha_decimals", 6), // the opacity keys round to these decimals (control's ALPHA_DECIMALS)
    gridMaxW: pick("grid_max_w", 1920), // side by side: a grid wider than this is scaled down (grid's MAX_GRID_W)
  });
}

// One smoothing step: out = s * previous + (1 - s) * map, in place over `previous` (a Float32Array);
// `previous` null starts the average afresh. The map's values are 0..255, as the wire sends them.
export function smoothInto(previous, values, s) {
  if (!previous || s === 0 || previous.length !== values.length) return Float32Array.from(values);
  for (let i = 0; i < previous.length; i++) previous[i] = s * previous[i] + (1 - s) * values[i];
  return previous;
}

// The heat layer's colour and weight for each map value v (0..255, as the wire sends it): RGBA
// bytes, 4 per value, made once per colormap and opacity (as the renderer's heat_layers): the
// colormap's colour (lut: 256 RGB triples), and as alpha the blend's weight. rules: rulesFrom's,
// for its blend and heatLevels. "heat": the opacity follows the map, w = alpha * map in steps of
// 1 / heatLevels; "uniform": opaque (the whole layer is drawn at opacity alpha).
export function heatTable(lut, alpha, { blend, heatLevels }) {
  // w as OpenCV's convertScaleAbs makes it: float32 arithmetic, ties to even, saturated.
  const scale = Math.fround(heatLevels * alpha);
  const table = new Uint8Array(4 * 256);
  for (let v = 0; v < 256; v++) {
    const w = blend === "heat" ? Math.min(255, roundHalfEven(Math.fround(Math.fround(v / 255) * scale))) : 255;
    table.set([lut[3 * v], lut[3 * v + 1], lut[3 * v + 2], w], 4 * v);
  }
  return table;
}

// The uniform blend over a picture's pixels (RGBA, in place; colour: RGBA of the same size), as
// OpenCV's addWeighted: alpha * colour + (1 - alpha) * picture, rounded with ties to even. Done
// here, per pixel: a canvas keeps opacity in steps of 1/255 (0.05 would be 13/255), 2 levels off.
export function blendUniform(pixels, colour, alpha) {
  const beta = 1 - alpha;
  for (let i = 0; i < pixels.length; i += 4) {
    for (let c = i; c < i + 3; c++) pixels[c] = roundHalfEven(alpha * colour[c] + beta * pixels[c]);
  }
}

function roundHalfEven(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 === 1 ? r - 1 : r;
}

// The opacity `steps` presses of rules.alphaStep away, kept in [0, 1] and on the step's grid
// (rounded to rules.alphaDecimals as the window does: 0.1 + 0.2 is not 0.3 in floating point).
export function stepAlpha(alpha, steps, { alphaStep, alphaDecimals }) {
  const unit = 10 ** alphaDecimals;
  return Math.min(1, Math.max(0, Math.round((alpha + steps * alphaStep) * unit) / unit));
}

// One rounding for every probability, as the renderer's HUD: never "100.0%" or "0.0%" for what is not.
// Before the config has come: the same rule as render's PERCENT.
const PERCENT = Object.freeze({ decimals: 1, unknown: "--%", one: "100%", almost_one: ">99.9%", almost_zero: "<0.1%" });

// A probability as the HUD writes it (render.format_percent), by the rule `rule` (rulesFrom's percent).
export function percent(p, rule = PERCENT) {
  if (!Number.isFinite(p)) return rule.unknown;
  if (p >= 1) return rule.one;
  const text = `${fixedHalfEven(100 * p, rule.decimals)}%`;
  if (text === `${(100).toFixed(rule.decimals)}%`) return rule.almost_one;
  if (text === `${(0).toFixed(rule.decimals)}%` && p > 0) return rule.almost_zero;
  return text;
}

// x with `decimals` digits, an exact tie going to the even digit as Python's format does
// (toFixed takes the larger: 12.25 would show as 12.3 here and 12.2 in the window).
function fixedHalfEven(x, decimals) {
  const text = x.toFixed(decimals);
  const exact = Math.abs(x).toFixed(decimals + 25); // exact for any tie: a tie has few binary digits
  const rest = exact.slice(exact.length - 25);
  if (rest !== "5".padEnd(25, "0")) return text;
  const down = exact.slice(0, exact.length - 25).replace(/\.$/, "");
  if (Number(down.slice(-1)) % 2 === 1) return text; // odd: rounding away from zero gives the even digit
  return x < 0 ? `-${down}` : down;
}
