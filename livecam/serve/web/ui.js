// The page's text and panels: notices, the connection badge, selects, the top classes, the
// stats line and the colour bar. Only the DOM: what to show is decided by the caller.

export const $ = (id) => document.getElementById(id);

export function notice(text, kind = "") {
  const box = $("notice");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
}

export function clearNotice(kind) {
  const box = $("notice");
  if (!box.hidden && box.dataset.kind === kind) box.hidden = true;
}

export function setConnection(text, kind) {
  const el = $("connection");
  el.textContent = text;
  el.dataset.state = kind;
}

export function fillSelect(select, values, selected) {
  select.replaceChildren(...values.map((v) => new Option(v, v, false, v === selected)));
}

export function showAlpha(alpha) {
  $("alpha").value = alpha;
  $("alpha-value").textContent = `${Math.round(alpha * 100)}%`;
}

export function showPaused(paused) {
  $("pause").setAttribute("aria-pressed", String(paused));
  $("pause").textContent = paused ? "Resume" : "Pause";
}

// The faithfulness test on or off; off, its last readout goes (it would no longer be renewed).
export function showFaithfulness(on) {
  $("faithfulness").setAttribute("aria-pressed", String(on));
  if (!on) $("faith").textContent = "";
}

export function showLocked(locked) {
  $("locked").hidden = !locked;
  $("unlock").disabled = !locked;
}

// The top classes as buttons made once and updated in place: answers arrive about 30 times a
// second, and a press held across one must land on the same element (a person's click, a tap,
// keyboard focus); a list rebuilt per answer loses them. onPick(classId, shiftKey) when one is pressed.
export function showTopk(message, format, onPick) {
  const list = $("topk");
  while (list.children.length < message.topk.length) list.append(topkItem(onPick));
  while (list.children.length > message.topk.length) list.lastElementChild.remove();
  message.topk.forEach((entry, rank) => {
    const button = list.children[rank].firstElementChild;
    const text = `${entry.label} ${format(entry.prob)}`;
    button.dataset.classId = entry.id;
    button.classList.toggle("explained", entry.id === message.class_id);
    button.setAttribute("aria-label", `${text}; explain this class`);
    button.querySelector(".bar").style.width = `${Math.max(1, entry.prob * 100)}%`;
    const label = button.querySelector(".text");
    if (label.textContent !== text) label.textContent = text;
  });
}

function topkItem(onPick) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  const bar = document.createElement("span");
  bar.className = "bar";
  const text = document.createElement("span");
  text.className = "text";
  button.append(bar, text);
  // The class shown when the click lands, read then: the button outlives the answers.
  button.addEventListener("click", (event) => onPick(Number(button.dataset.classId), event.shiftKey));
  item.append(button);
  return item;
}

// Side by side: what each panel shows, one line each (none: the list is hidden).
export function showPanels(texts) {
  const list = $("panels");
  list.hidden = texts.length === 0;
  if (texts.join("\n") === [...list.children].map((item) => item.textContent).join("\n")) return;
  list.replaceChildren(
    ...texts.map((text) => {
      const item = document.createElement("li");
      item.textContent = text;
      return item;
    }),
  );
}

// Events per second over the last two seconds.
export class RateMeter {
  constructor() {
    this.times = [];
  }

  tick(now) {
    this.times.push(now);
  }

  rate(now) {
    const list = this.times;
    while (list.length && now - list[0] > 2000) list.shift();
    return list.length > 1 ? (1000 * (list.length - 1)) / (list[list.length - 1] - list[0]) : 0;
  }
}

export function showStats(last, rtt, answersPerS, framesPerS) {
  const round = rtt ? ` · round trip ${rtt.toFixed(0)} ms` : "";
  $("stats").textContent =
    `${last.method} @ ${last.layer} · engine ${last.ms.engine.toFixed(0)} ms${round} · ` +
    `${answersPerS.toFixed(1)} maps/s · display ${framesPerS.toFixed(0)} fps`;
}

export function drawLegend(lut) {
  const canvas = $("legend");
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(256, canvas.height);
  for (let y = 0; y < canvas.height; y++) {
    for (let x = 0; x < 256; x++) image.data.set([lut[3 * x], lut[3 * x + 1], lut[3 * x + 2], 255], 4 * (y * 256 + x));
  }
  ctx.putImageData(image, 0, 0);
}

// The stage (the picture with its badges and notices) fills the screen; Esc leaves, as does f.
export function toggleFullscreen() {
  if (document.fullscreenElement) {
    document.exitFullscreen();
  } else if (document.fullscreenEnabled) {
    $("view").parentElement.requestFullscreen().catch((err) => notice(`Fullscreen was refused: ${err.message}`, "fullscreen"));
  }
}

export function toggleHelp() {
  $("help").hidden = !$("help").hidden;
  $("keys").setAttribute("aria-pressed", String(!$("help").hidden));
}
