// Text from servers, shown and never obeyed: DOM text nodes only (no innerHTML), control characters made visible.

// C0 controls but TAB, DEL, C1 controls, and the Unicode controls that reorder or hide text: as the CLI shows them.
const UNSAFE = /[\x00-\x08\x0a-\x1f\x7f\x80-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const ANY_UNSAFE = new RegExp(UNSAFE.source);

export function caret(ch) {
  const c = ch.codePointAt(0);
  if (c < 0x20) return "^" + String.fromCharCode(c + 0x40); // ESC is ^[, BEL is ^G, as cat -v shows them
  if (c === 0x7f) return "^?";
  if (c <= 0x9f) return "\\x" + c.toString(16).padStart(2, "0");
  return "<U+" + c.toString(16).toUpperCase().padStart(4, "0") + ">";
}

// Put `text` into `el` (replacing what it had): plain text, each control character a visible, marked span.
export function setText(el, text) {
  text = text == null ? "" : String(text);
  if (text.endsWith("\r")) text = text.slice(0, -1); // CRLF line endings: harmless, and noise if shown
  if (!ANY_UNSAFE.test(text)) {
    el.textContent = text;
    return el;
  }
  el.textContent = "";
  let last = 0;
  for (const m of text.matchAll(UNSAFE)) {
    if (m.index > last) el.append(document.createTextNode(text.slice(last, m.index)));
    const span = document.createElement("span");
    span.className = "ctl";
    span.textContent = caret(m[0]);
    el.append(span);
    last = m.index + m[0].length;
  }
  if (last < text.length) el.append(document.createTextNode(text.slice(last)));
  return el;
}

// An element with a class and visible text: el("span", "muted", "text").
export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) setText(e, text);
  return e;
}

export function duration(seconds) {
  if (seconds == null || !isFinite(seconds) || seconds < 0) return "";
  if (seconds < 10) return seconds.toFixed(1) + " s";
  const s = Math.round(seconds);
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m";
}

export function clock(seconds) {
  if (seconds == null) return "";
  return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
}

export function when(seconds) {
  if (seconds == null) return "";
  return new Date(seconds * 1000).toLocaleString([], { hour12: false });
}
