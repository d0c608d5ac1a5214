// Small DOM helpers: the app builds its elements with h() and changes them in
// place, so a tick that turns blue touches one attribute, not a list.

// h makes an element. attrs: "class", "text", "on<event>" (a listener),
// "aria-*"/"data-*"/other attributes (false/null/undefined leave them out),
// and properties for "value", "hidden", "disabled", "checked".
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'hidden' || k === 'disabled' || k === 'checked') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// clear empties el and fills it with children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Times as people read them in a chat.
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
const shortDayFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });

export function clock(ts) { return timeFmt.format(new Date(ts)); }

export function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  if (dayKey(ts) === dayKey(today.getTime())) return 'Today';
  const y = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(ts) === dayKey(y.getTime())) return 'Yesterday';
  return dayFmt.format(d);
}

// listTime is the chat list's time: the clock today, else the day.
export function listTime(ts) {
  if (!ts) return '';
  return dayKey(ts) === dayKey(Date.now()) ? clock(ts) : shortDayFmt.format(new Date(ts));
}

export function lastSeen(iso) {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  if (dayKey(t) === dayKey(Date.now())) return `last seen today at ${clock(t)}`;
  return `last seen ${shortDayFmt.format(new Date(t))} at ${clock(t)}`;
}
