// The window's keys (README's Keys table, livecam/viewer/keys.py) on the page. Not while typing in a
// field; Space and Enter on a focused button or link press it, as everywhere on the web.

const REPEATING_KEYS = new Set(["[", "]"]); // held down, they keep stepping; the others act once

// actions: {pause, nextMethod, unlock, lockRank(k), alphaDown, alphaUp, snapshot, record, fullscreen, help, clearBox}
export function bindKeys(actions) {
  const table = {
    " ": actions.pause,
    m: actions.nextMethod,
    0: actions.unlock,
    "[": actions.alphaDown,
    "]": actions.alphaUp,
    s: actions.snapshot,
    r: actions.record,
    f: actions.fullscreen,
    h: actions.help,
    c: actions.clearBox,
  };
  for (const rank of [1, 2, 3, 4, 5]) table[rank] = () => actions.lockRank(rank);
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return; // the browser's own shortcuts
    const target = event.target instanceof Element ? event.target : null;
    if (target && target.closest("input, select, textarea, [contenteditable]")) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === " " && target && target.closest("button, a")) return;
    const action = Object.hasOwn(table, key) ? table[key] : null;
    if (!action) return;
    event.preventDefault(); // Space would scroll the page
    if (!event.repeat || REPEATING_KEYS.has(key)) action();
  });
}
