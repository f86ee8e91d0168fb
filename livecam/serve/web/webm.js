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

export async function withDuration(blob, ms) {
  try {
    const head = new Uint8Array(await blob.slice(0, 1 << 16).arrayBuffer());
    const patched = webmWithDuration(head, ms);
    return patched ? new Blob([patched.head, blob.slice(patched.rest)], { type: blob.type }) : blob;
  } catch (err) {
    return blob; // a video without its length beats none
  }
}

// {head: the new bytes up to the end of Info, rest: where the old file goes on}, or null.
export function webmWithDuration(bytes, ms) {
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
