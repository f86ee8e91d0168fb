// Side by side (the compare selector): one frame's panels tiled as the window's grid
// (livecam/render/grid.py): the layout the answer names (panel_grid: columns, rows), each panel
// the picture under its own map, labelled top left with its class and probability and bottom left
// with what it shows ("top 2", "layercam"). As the window's grid, each map is drawn as it comes,
// on its own maximum, without smoothing; the grid is scaled down where it would be wider than
// rules.gridMaxW.

const here = new URL(import.meta.url).search; // the page's token: every URL of this server needs it
const [{ HeatLayer }, { drawCaption, drawLabel, hudFont, shortName }] = await Promise.all(
  ["heat", "files"].map((name) => import(`./${name}.js${here}`)),
);

export class Panels {
  constructor(format) {
    this.format = format; // the percent text
    this.layers = []; // one HeatLayer per panel
    this.cell = null; // the canvas one panel is drawn on
  }

  // Takes an answer's panels (none: nothing side by side). rules: rulesFrom's.
  update(message, rules) {
    const still = Object.freeze({ ...rules, smooth: 0 }); // the window's grid draws each map as it comes
    this.layers = message.panels.map((panel, i) => {
      const layer = this.layers[i] || new HeatLayer(still);
      layer.rules = still;
      layer.update(panel.cam, "");
      return layer;
    });
  }

  // The grid's size for a width x height picture: [columns * panel width, rows * panel height].
  size(message, width, height, rules) {
    const [cols, rows] = message.panel_grid;
    const [w, h] = panelSize(message, width, height, rules);
    return [cols * w, rows * h];
  }

  // Draws the grid of `picture` (width x height) on ctx, whose canvas has size()'s size.
  draw(ctx, picture, width, height, message, alpha, lut, rules) {
    const [cols] = message.panel_grid;
    const [w, h] = panelSize(message, width, height, rules);
    const cell = (this.cell ||= document.createElement("canvas"));
    if (cell.width !== w || cell.height !== h) [cell.width, cell.height] = [w, h];
    const cellCtx = cell.getContext("2d", { willReadFrequently: rules.blend === "uniform" });
    const font = hudFont(h);
    message.panels.forEach((panel, i) => {
      cellCtx.drawImage(picture, 0, 0, w, h);
      if (this.layers[i]) this.layers[i].draw(cellCtx, w, h, message.box, alpha, lut);
      drawLabel(cellCtx, font, `${panelName(panel, shortName)}  ${this.format(panel.prob)}`);
      drawCaption(cellCtx, font, panel.title);
      ctx.drawImage(cell, (i % cols) * w, Math.floor(i / cols) * h);
    });
  }
}

// What each panel of an answer shows, in words ("top 2: circle 1.2%").
export function panelCaptions(message, format) {
  return message.panels.map((panel) => `${panel.title}: ${panelName(panel)} ${format(panel.prob)}`);
}

// A panel's class, and the class it is contrasted with, as the window's label says them.
function panelName(panel, cut = (name) => name) {
  return panel.contrast_name ? `${cut(panel.label)} not ${cut(panel.contrast_name)}` : cut(panel.label);
}

// Each panel's size, as grid.py's panel_size: the picture's, scaled down where the grid would be too wide.
function panelSize(message, width, height, rules) {
  const scale = Math.min(1, rules.gridMaxW / (message.panel_grid[0] * width));
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}
