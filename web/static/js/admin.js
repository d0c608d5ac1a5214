// The admin dashboard at /admin: sign in, find users (ban, unban, revoke
// devices), read reports and the audit log. It speaks /v1/admin with the
// session cookie and sends the session's CSRF token with every change.
import { h, fill } from './dom.js';

const root = document.getElementById('admin');
let csrf = '';
let me = '';

class AdminError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(method, path, body) {
  const init = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET') init.headers['X-CSRF-Token'] = csrf;
  let res;
  try {
    res = await fetch('/v1/admin' + path, init);
  } catch {
    throw new AdminError(0, 'The server cannot be reached.');
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (res.status === 401 && path !== '/login') {
    showLogin(path === '/me' ? '' : 'Your session ended; sign in again.');
    throw new AdminError(401, 'signed out');
  }
  if (!res.ok) throw new AdminError(res.status, data?.error?.message || res.statusText);
  return data;
}

function showLogin(notice) {
  const user = h('input', { id: 'admin-user', autocomplete: 'username', required: true });
  const pass = h('input', { id: 'admin-pass', type: 'password', autocomplete: 'current-password', required: true });
  const totp = h('input', { id: 'admin-totp', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '6' });
  const status = h('p', { class: 'form-status', role: 'status', 'aria-live': 'polite', text: notice || '' });
  const form = h('form', { class: 'signin-step', onsubmit: async (ev) => {
    ev.preventDefault();
    status.textContent = 'Signing in…';
    try {
      const r = await call('POST', '/login', { username: user.value, password: pass.value, totp: totp.value });
      csrf = r.csrf_token;
      me = r.username;
      showDashboard('overview');
    } catch (e) {
      status.textContent = e.message;
      pass.select();
    }
  } },
  h('label', { for: 'admin-user', text: 'Username' }), user,
  h('label', { for: 'admin-pass', text: 'Password' }), pass,
  h('label', { for: 'admin-totp', text: 'Authenticator code (if you set one up)' }), totp,
  h('button', { type: 'submit', class: 'primary', text: 'Sign in' }));
  fill(root, h('main', { class: 'signin' }, h('div', { class: 'signin-card' },
    h('img', { src: '/assets/icon.svg', alt: '', class: 'logo', width: '56', height: '56' }),
    h('h1', { text: 'Tern admin' }), form, status)));
  root.removeAttribute('aria-busy');
  user.focus();
}

const pages = { overview: 'Overview', users: 'Users', groups: 'Groups', businesses: 'Businesses', reports: 'Reports', audit: 'Audit log', settings: 'Settings', account: 'Account' };

// page counts page changes: a live page's refresh stops once another is shown.
let page = 0;

function showDashboard(name) {
  page++;
  const main = h('main', { class: 'admin-main', 'aria-live': 'polite' });
  const nav = h('nav', { class: 'admin-nav', 'aria-label': 'Admin' },
    h('h1', {}, h('img', { src: '/assets/icon.svg', alt: '', width: '24', height: '24' }), 'Tern admin'),
    Object.entries(pages).map(([key, label]) => h('button', {
      'aria-current': key === name ? 'page' : false, text: label, onclick: () => showDashboard(key) })),
    h('span', { class: 'who', text: `Signed in as ${me}` }),
    h('button', { text: 'Sign out', onclick: async () => {
      try { await call('POST', '/logout'); } catch { /* signed out either way */ }
      csrf = '';
      showLogin('Signed out.');
    } }));
  fill(root, h('div', { class: 'admin-shell' }, nav, main));
  root.removeAttribute('aria-busy');
  ({ overview: overviewPage, users: usersPage, groups: groupsPage, businesses: businessesPage, reports: reportsPage, audit: auditPage,
    settings: settingsPage, account: accountPage })[name](main);
}

function errorLine(e) {
  return h('p', { class: 'form-status', role: 'alert', text: e.message });
}

function when(ts) {
  return ts ? new Date(ts).toLocaleString() : '';
}

// overviewPage shows the cluster live: it asks again every report period
// while it is the page shown.
async function overviewPage(main) {
  const mine = page;
  const heading = h('h2', { text: 'Overview' });
  if (!main.firstChild) fill(main, heading, h('p', { text: 'Loading…' }));
  let o;
  try {
    o = await call('GET', '/overview');
  } catch (e) {
    if (mine === page) fill(main, heading, errorLine(e));
    return;
  }
  if (mine !== page) return;
  // The current minute's count grows a report at a time: over less than a
  // report period it would overstate the rate.
  const elapsed = Math.max(o.report_every_ms / 1000, (o.now - (o.first_minute + 59 * 60000)) / 1000);
  // Per second: whole minutes over 60 s, the current one over its seconds so far.
  const rates = o.messages_per_minute.map((c, i) => (i === 59 ? c / elapsed : c / 60));
  const lastFull = rates[58];
  const nodes = o.nodes || [];
  fill(main, heading,
    h('div', { class: 'stats' },
      stat(String(o.connections), 'Connected devices'),
      stat(formatRate(lastFull), 'Messages per second (last minute)'),
      stat(`${o.nodes_up} of ${nodes.length}`, 'Nodes up')),
    h('section', { class: 'card', 'aria-labelledby': 'chart-title' },
      h('h3', { id: 'chart-title', text: 'Messages per second, last hour' }),
      chart(rates, o.first_minute)),
    h('h3', { text: 'Nodes' }),
    o.reports_error ? h('p', { class: 'form-status', role: 'alert', text: o.reports_error }) : null,
    h('div', { class: 'table-scroll' }, h('table', { class: 'admin-table', 'aria-label': 'Nodes' },
      h('thead', {}, h('tr', {}, ['Node', 'State', 'Devices', 'Store', 'Broker', 'Push', 'SMS', 'Mail', 'Webhooks', 'Version', 'Up since']
        .map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, nodes.map((n) => h('tr', {},
        h('th', { scope: 'row', text: n.node_id + (n.self ? ' (this one)' : '') }),
        h('td', {}, nodeState(n, o.now)),
        h('td', { text: n.up ? String(n.connections) : '—' }),
        ['store', 'broker', 'push', 'sms', 'mail', 'webhooks'].map((k) => h('td', {}, checkCell(n.checks?.[k], n.engines, k))),
        h('td', { text: n.version || '' }),
        h('td', { text: when(n.started_at) })))))),
    h('p', { class: 'hint', text: `Updated ${new Date(o.now).toLocaleTimeString()}; every node reports every ${Math.round(o.report_every_ms / 1000)} s.` }));
  setTimeout(() => { if (mine === page) overviewPage(main); }, Math.max(2000, o.report_every_ms));
}

function stat(value, label) {
  return h('div', { class: 'stat' }, h('span', { class: 'stat-value', text: value }), h('span', { class: 'stat-label', text: label }));
}

function formatRate(r) {
  return r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toFixed(2);
}

function nodeState(n, now) {
  if (n.up) return h('span', { class: 'state ok', text: n.draining ? 'draining' : 'up' });
  const ago = Math.round((now - n.reported_at) / 1000);
  return h('span', { class: 'state failing', text: n.stopped ? `stopped ${when(n.reported_at)}` : `not reporting for ${ago} s` });
}

const engineOf = { store: 'store', broker: 'router', push: 'push', sms: 'sms', mail: 'mail' };

function checkCell(c, engines, key) {
  if (!c) return h('span', { class: 'state', text: '—' });
  const engine = engines?.[engineOf[key]];
  return h('div', {}, h('span', { class: `state ${c.state}`, title: c.detail || '', text: c.state }),
    engine ? h('span', { class: 'hint', text: ` ${engine}` }) : null,
    c.state === 'failing' && c.detail ? h('div', { class: 'hint', text: c.detail }) : null);
}

// chart draws rates (one per minute, oldest first) as an SVG line over an
// area, with its scale; its accessible name says what it shows in words.
function chart(rates, firstMinute) {
  const NS = 'http://www.w3.org/2000/svg';
  const el = (tag, attrs) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  };
  const W = 600, H = 160, L = 40, B = 20, T = 8;
  const peak = Math.max(...rates);
  const top = niceCeil(peak);
  const x = (i) => L + (i * (W - L)) / (rates.length - 1);
  const y = (r) => T + (H - T - B) * (1 - r / top);
  const line = rates.map((r, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(r).toFixed(1)}`).join('');
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img',
    'aria-label': `Messages per second over the last hour: now ${formatRate(rates[58])}, peak ${formatRate(peak)}` });
  for (const f of [0, 0.5, 1]) {
    svg.append(el('line', { x1: L, x2: W, y1: y(top * f), y2: y(top * f), class: 'grid' }));
    const t = el('text', { x: L - 6, y: y(top * f) + 4, 'text-anchor': 'end', class: 'axis' });
    t.textContent = formatRate(top * f);
    svg.append(t);
  }
  for (const [i, label] of [[0, new Date(firstMinute)], [30, new Date(firstMinute + 30 * 60000)], [59, 'now']]) {
    const t = el('text', { x: x(i), y: H - 4, 'text-anchor': i === 0 ? 'start' : i === 59 ? 'end' : 'middle', class: 'axis' });
    t.textContent = label instanceof Date ? label.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : label;
    svg.append(t);
  }
  svg.append(el('path', { d: `${line}L${x(rates.length - 1)},${y(0)}L${x(0)},${y(0)}Z`, class: 'area' }));
  svg.append(el('path', { d: line, class: 'line' }));
  return svg;
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten (at least 1).
function niceCeil(v) {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((n) => n >= v);
}

function usersPage(main) {
  const q = h('input', { id: 'user-search', type: 'search', placeholder: '+1415… or a name' });
  const results = h('div');
  const detail = h('div');
  const search = async () => {
    fill(results, h('p', { text: 'Searching…' }));
    try {
      const r = await call('GET', '/users' + (q.value.trim() ? '?q=' + encodeURIComponent(q.value.trim()) : ''));
      fill(results, r.users.length ? h('table', { class: 'admin-table', 'aria-label': 'Users' },
        h('thead', {}, h('tr', {}, ['Name', 'Phone', 'Since', 'Status'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, r.users.map((u) => h('tr', {},
          h('td', {}, h('button', { class: 'link', text: u.name || '(no name)', onclick: () => showUser(u.user_id, detail, search) })),
          h('td', { text: u.phone }), h('td', { text: new Date(u.created_at).toLocaleDateString() }),
          h('td', { class: u.ban ? 'banned' : '', text: u.ban ? 'banned' : 'active' })))))
        : h('p', { text: q.value.trim() ? 'Nobody matches.' : 'Nobody is banned.' }));
    } catch (e) { fill(results, errorLine(e)); }
  };
  fill(main, h('h2', { text: 'Users' }),
    h('form', { class: 'admin-row', onsubmit: (ev) => { ev.preventDefault(); search(); } },
      h('div', {}, h('label', { for: 'user-search', text: 'Search users' }), q),
      h('button', { type: 'submit', class: 'primary', text: 'Search' })),
    h('p', { class: 'hint', text: 'By phone number (its start) or a part of the name. Without a query: the banned users.' }),
    results, detail);
  q.focus();
  search();
}

async function showUser(id, detail, refresh) {
  fill(detail, h('p', { text: 'Loading…' }));
  let u;
  try { u = await call('GET', '/users/' + encodeURIComponent(id)); } catch (e) { fill(detail, errorLine(e)); return; }
  const status = h('p', { class: 'form-status', role: 'status' });
  const reason = h('input', { id: 'ban-reason', maxlength: '1000', placeholder: 'spam, abuse, …' });
  const act = async (fn, done) => {
    try { await fn(); status.textContent = done; await refresh(); showUser(id, detail, refresh); } catch (e) { status.textContent = e.message; }
  };
  fill(detail, h('section', { class: 'card', 'aria-label': `User ${u.name || u.phone}` },
    h('h3', { text: `${u.name || '(no name)'} · ${u.phone}` }),
    h('p', { class: 'hint', text: `${u.user_id} · since ${new Date(u.created_at).toLocaleString()}` }),
    u.ban
      ? h('div', {}, h('p', { class: 'banned', text: `Banned by ${u.ban.by} on ${when(u.ban.ts)}: ${u.ban.reason || 'no reason given'}` }),
        h('button', { class: 'primary', text: 'Unban', onclick: () => act(() => call('DELETE', `/users/${encodeURIComponent(id)}/ban`), 'Unbanned.') }))
      : h('form', { class: 'admin-row', onsubmit: (ev) => { ev.preventDefault(); act(() => call('PUT', `/users/${encodeURIComponent(id)}/ban`, { reason: reason.value }), 'Banned: signed out everywhere.'); } },
        h('div', {}, h('label', { for: 'ban-reason', text: 'Reason' }), reason),
        h('button', { type: 'submit', class: 'danger', text: 'Ban' })),
    h('h3', { text: `Devices (${(u.devices || []).length})` }),
    (u.devices || []).length ? h('table', { class: 'admin-table', 'aria-label': 'Devices' },
      h('tbody', {}, u.devices.map((d) => h('tr', {},
        h('td', { text: `${d.name || d.platform} (${d.platform})` }),
        h('td', { text: d.online ? 'online' : (d.last_seen ? 'last seen ' + new Date(d.last_seen).toLocaleString() : '') }),
        h('td', {}, h('button', { text: 'Revoke', 'aria-label': `Revoke ${d.name || d.platform}`,
          onclick: () => act(() => call('DELETE', `/users/${encodeURIComponent(id)}/devices/${encodeURIComponent(d.device_id)}`), 'Device revoked.') }))))))
      : h('p', { class: 'hint', text: 'No devices.' }),
    h('h3', { text: `Groups (${(u.groups || []).length})` }),
    (u.groups || []).length ? h('ul', { class: 'plain', 'aria-label': 'Groups' },
      u.groups.map((g) => h('li', { text: `${g.name || '(no name)'} · ${g.members} members` })))
      : h('p', { class: 'hint', text: 'In no group.' }),
    status));
}

// reportsPage is the moderation queue: open reports, newest first, each
// with the messages it points at, to dismiss or to ban the user for.
async function reportsPage(main, all = false) {
  const heading = h('h2', { text: 'Reports' });
  const status = h('p', { class: 'form-status', role: 'status', 'aria-live': 'polite' });
  const toggle = h('label', { class: 'inline' }, h('input', { type: 'checkbox', checked: all,
    onchange: (ev) => reportsPage(main, ev.target.checked) }), ' Show resolved reports too');
  fill(main, heading, toggle, h('p', { text: 'Loading…' }));
  let r;
  try { r = await call('GET', '/reports' + (all ? '?status=all' : '')); } catch (e) { fill(main, heading, toggle, errorLine(e)); return; }
  const resolve = async (rp, action) => {
    const who = rp.user?.name || rp.user?.phone || rp.user_id;
    if (action === 'ban' && !confirm(`Ban ${who}? They are signed out everywhere and cannot sign in again.`)) return;
    try {
      await call('POST', `/reports/${encodeURIComponent(rp.report_id)}/${action}`);
      await reportsPage(main, all);
      main.append(h('p', { class: 'form-status', role: 'status', text: action === 'ban' ? `Banned ${who}.` : 'Report dismissed.' }));
    } catch (e) { status.textContent = e.message; }
  };
  fill(main, heading, toggle, status, r.reports.length ? h('table', { class: 'admin-table', 'aria-label': 'Reports' },
    h('thead', {}, h('tr', {}, ['When', 'Reported user', 'Reason', 'Messages', 'Action'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, r.reports.map((rp) => h('tr', {},
      h('td', { text: when(rp.ts) }),
      h('td', { text: rp.user ? `${rp.user.name || '(no name)'} · ${rp.user.phone}` : rp.user_id }),
      h('td', { text: rp.reason || '' }),
      h('td', {}, (rp.messages || []).map((m) => h('p', { class: 'quote', text: m.body?.text || m.body?.caption || '(media)' }))),
      h('td', {}, rp.resolution
        ? h('span', { class: 'hint', text: `${rp.resolution} by ${rp.resolved_by}, ${when(rp.resolved_ts)}` })
        : h('div', { class: 'actions' },
          h('button', { text: 'Dismiss', 'aria-label': `Dismiss the report on ${rp.user?.name || rp.user_id}`, onclick: () => resolve(rp, 'dismiss') }),
          h('button', { class: 'danger', text: 'Ban', 'aria-label': `Ban ${rp.user?.name || rp.user_id}`, onclick: () => resolve(rp, 'ban') })))))))
    : h('p', { text: all ? 'No reports.' : 'No open reports.' }));
}

// groupsPage lists groups (by name), and shows one with its members, to
// delete it when it must go.
function groupsPage(main) {
  const q = h('input', { id: 'group-search', type: 'search', placeholder: 'a part of the name' });
  const results = h('div');
  const detail = h('div');
  const search = async (after = '') => {
    if (!after) fill(results, h('p', { text: 'Searching…' }));
    try {
      const r = await call('GET', '/groups?q=' + encodeURIComponent(q.value.trim()) + (after ? '&after=' + encodeURIComponent(after) : ''));
      const rows = r.groups.map((g) => h('tr', {},
        h('td', {}, h('button', { class: 'link', text: g.name || '(no name)', onclick: () => showGroup(g.chat_id, detail, () => search()) })),
        h('td', { text: g.members.length ? String(g.members.length) : 'deleted' }),
        h('td', { text: new Date(g.created_at).toLocaleDateString() })));
      const more = r.next_after ? h('button', { text: 'More', onclick: (ev) => { ev.target.remove(); search(r.next_after); } }) : null;
      if (after) {
        results.querySelector('tbody').append(...rows);
        if (more) results.append(more);
        return;
      }
      fill(results, rows.length ? h('table', { class: 'admin-table', 'aria-label': 'Groups' },
        h('thead', {}, h('tr', {}, ['Name', 'Members', 'Created'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, rows)) : h('p', { text: 'No group matches.' }), more);
    } catch (e) { fill(results, errorLine(e)); }
  };
  fill(main, h('h2', { text: 'Groups' }),
    h('form', { class: 'admin-row', onsubmit: (ev) => { ev.preventDefault(); search(); } },
      h('div', {}, h('label', { for: 'group-search', text: 'Search groups' }), q),
      h('button', { type: 'submit', class: 'primary', text: 'Search' })),
    results, detail);
  q.focus();
  search();
}

async function showGroup(id, detail, refresh) {
  fill(detail, h('p', { text: 'Loading…' }));
  let g;
  try { g = await call('GET', '/groups/' + encodeURIComponent(id)); } catch (e) { fill(detail, errorLine(e)); return; }
  const status = h('p', { class: 'form-status', role: 'status' });
  const person = (uid) => {
    const p = g.people?.[uid];
    return p ? `${p.name || '(no name)'} · ${p.phone}` : uid;
  };
  const del = async () => {
    if (!confirm(`Delete the group ${g.name}? Every member is removed from it.`)) return;
    try {
      await call('DELETE', '/groups/' + encodeURIComponent(id));
      await refresh();
      showGroup(id, detail, refresh);
    } catch (e) { status.textContent = e.message; }
  };
  fill(detail, h('section', { class: 'card', 'aria-label': `Group ${g.name}` },
    h('h3', { text: g.name || '(no name)' }),
    g.description ? h('p', { text: g.description }) : null,
    h('p', { class: 'hint', text: `${g.chat_id} · created ${new Date(g.created_at).toLocaleString()} by ${person(g.created_by)}` }),
    g.members.length ? [
      h('table', { class: 'admin-table', 'aria-label': 'Members' },
        h('thead', {}, h('tr', {}, ['Member', 'Role', 'Joined'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, g.members.map((m) => h('tr', {},
          h('td', { text: person(m.user_id) }), h('td', { text: m.role }), h('td', { text: new Date(m.joined_at).toLocaleDateString() }))))),
      h('button', { class: 'danger', text: 'Delete group', onclick: del })]
      : h('p', { class: 'banned', text: 'Deleted: the group has no members.' }),
    status));
}

async function auditPage(main, before = '') {
  fill(main, h('h2', { text: 'Audit log' }), h('p', { text: 'Loading…' }));
  try {
    const r = await call('GET', '/audit' + (before ? '?before=' + encodeURIComponent(before) : ''));
    fill(main, h('h2', { text: 'Audit log' }),
      h('table', { class: 'admin-table', 'aria-label': 'Audit log' },
        h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'To', 'Detail', 'From'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, r.entries.map((e) => h('tr', {},
          h('td', { text: when(e.ts) }), h('td', { text: e.actor }), h('td', { text: e.action.replace(/_/g, ' ') }),
          h('td', { text: e.target || '' }), h('td', { text: e.detail || '' }), h('td', { text: e.ip || '' }))))),
      r.next_before ? h('button', { text: 'Older', onclick: () => auditPage(main, r.next_before) }) : null);
  } catch (e) { main.append(errorLine(e)); }
}

// businessesPage lists the business accounts (the Cloud API's numbers),
// makes one (its token and webhook secret shown once), and opens one to
// change its settings and tokens.
async function businessesPage(main) {
  const heading = h('h2', { text: 'Businesses' });
  const list = h('div');
  const detail = h('div');
  const status = statusLine();
  const load = async () => {
    try {
      const r = await call('GET', '/businesses');
      fill(list, r.businesses.length ? h('table', { class: 'admin-table', 'aria-label': 'Businesses' },
        h('thead', {}, h('tr', {}, ['Name', 'Phone', 'phone_number_id', 'Webhook', 'Rate'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, r.businesses.map((b) => h('tr', {},
          h('td', {}, h('button', { class: 'link', text: b.name, onclick: () => showBusiness(b, detail, load) })),
          h('td', { text: b.phone }), h('td', {}, h('code', { text: b.phone_number_id })),
          h('td', {}, h('span', { text: b.webhook_url ? (b.webhook_verified ? b.webhook_url : b.webhook_url + ' (not verified)') : 'none' }),
            b.webhook_failing ? h('span', { class: 'state failing',
              text: ` failing since ${new Date(b.webhook_failing.since).toLocaleString()} (${b.webhook_failing.attempts} tries; next ${new Date(b.webhook_failing.next).toLocaleTimeString()}): ${b.webhook_failing.error}` }) : null),
          h('td', { text: `${b.rate_per_second}/s` })))))
        : h('p', { class: 'hint', text: 'No businesses yet.' }));
    } catch (e) { fill(list, errorLine(e)); }
  };
  const field = (id, label, attrs = {}) => [h('label', { for: id, text: label }), h('input', { id, ...attrs })];
  const form = h('form', { class: 'admin-row', onsubmit: async (ev) => {
    ev.preventDefault();
    const v = (id) => form.querySelector('#' + id).value.trim();
    try {
      const b = await call('POST', '/businesses', { phone: v('biz-phone'), name: v('biz-name'), webhook_url: v('biz-hook'), verify_token: v('biz-verify') });
      form.reset();
      fill(status, 'Made. Shown this once; copy them now: ',
        h('code', { class: 'secret', text: JSON.stringify({ phone_number_id: b.phone_number_id, waba_id: b.waba_id, access_token: b.access_token, app_secret: b.app_secret }) }));
      load();
    } catch (e) { status.textContent = e.message; }
  } },
  h('div', {}, ...field('biz-phone', 'Phone number', { required: true, placeholder: '+14155550100', inputmode: 'tel' })),
  h('div', {}, ...field('biz-name', 'Business name', { required: true, maxlength: '64' })),
  h('div', {}, ...field('biz-hook', 'Webhook URL (optional)', { type: 'url', placeholder: 'https://…' })),
  h('div', {}, ...field('biz-verify', 'Verify token (with the URL)', {})),
  h('button', { type: 'submit', class: 'primary', text: 'Make business' }));
  fill(main, heading, h('p', { class: 'hint', text: 'Companies’ systems chat with users through the WhatsApp Cloud API’s REST and webhooks. A business needs a number nobody uses yet.' }),
    list, h('section', { class: 'card', 'aria-label': 'New business' }, h('h3', { text: 'New business' }), form, status), detail);
  load();
}

async function showBusiness(b, detail, refresh) {
  const status = statusLine();
  const rule = h('input', { id: 'biz-window', type: 'checkbox', checked: b.window_rule });
  const rate = h('input', { id: 'biz-rate', type: 'number', min: '1', max: '1000', value: String(b.rate_per_second) });
  const tokens = h('div');
  const loadTokens = async () => {
    try {
      const r = await call('GET', `/businesses/${encodeURIComponent(b.user_id)}/tokens`);
      fill(tokens, h('table', { class: 'admin-table', 'aria-label': 'API tokens' }, h('tbody', {}, r.tokens.map((t) => h('tr', {},
        h('td', { text: t.name }), h('td', {}, h('code', { text: t.token_id })), h('td', { text: new Date(t.created_at).toLocaleString() }),
        h('td', {}, h('button', { class: 'danger', text: 'Revoke', 'aria-label': `Revoke the token ${t.name}`, onclick: async () => {
          try { await call('DELETE', `/businesses/${encodeURIComponent(b.user_id)}/tokens/${encodeURIComponent(t.token_id)}`); loadTokens(); } catch (e) { status.textContent = e.message; }
        } })))))));
    } catch (e) { fill(tokens, errorLine(e)); }
  };
  const tokenName = h('input', { id: 'biz-token-name', maxlength: '100', required: true });
  fill(detail, h('section', { class: 'card', 'aria-label': `Business ${b.name}` },
    h('h3', { text: `${b.name} · ${b.phone}` }),
    h('p', { class: 'hint', text: `phone_number_id ${b.phone_number_id} · WABA ${b.waba_id}` }),
    h('form', { class: 'admin-row', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        await call('PATCH', `/businesses/${encodeURIComponent(b.user_id)}`, { window_rule: rule.checked, rate_per_second: Number(rate.value) });
        status.textContent = 'Saved.';
        refresh();
      } catch (e) { status.textContent = e.message; }
    } }, h('label', { class: 'inline' }, rule, ' Free-form messages only within 24 h of the customer’s last'),
    h('div', {}, h('label', { for: 'biz-rate', text: 'Messages per second' }), rate),
    h('button', { type: 'submit', class: 'primary', text: 'Save' })),
    h('h3', { text: 'API tokens' }), tokens,
    h('form', { class: 'admin-row', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const t = await call('POST', `/businesses/${encodeURIComponent(b.user_id)}/tokens`, { name: tokenName.value.trim() });
        ev.target.reset();
        fill(status, 'New token (shown this once): ', h('code', { class: 'secret', text: t.access_token }));
        loadTokens();
      } catch (e) { status.textContent = e.message; }
    } }, h('div', {}, h('label', { for: 'biz-token-name', text: 'Name of a new token' }), tokenName),
    h('button', { type: 'submit', class: 'primary', text: 'Create token' })),
    status));
  loadTokens();
}

// settingsPage reads out what this node runs on and its limits, each with
// the flag that changes it: settings live on the node's command line.
async function settingsPage(main) {
  const heading = h('h2', { text: 'Settings' });
  fill(main, heading, h('p', { text: 'Loading…' }));
  try {
    const r = await call('GET', '/settings');
    fill(main, heading,
      h('p', { class: 'hint', text: 'Set with flags (or their TERN_* variables) when the node starts; every node of a cluster should have the same.' }),
      r.sections.map((sec) => h('section', { class: 'card', 'aria-label': sec.title },
        h('h3', { text: sec.title }),
        h('table', { class: 'admin-table settings' }, h('tbody', {}, sec.items.map((it) => h('tr', {},
          h('th', { scope: 'row', text: it.name }), h('td', { text: it.value }),
          h('td', {}, it.flag ? h('code', { text: it.flag }) : null))))))));
  } catch (e) { fill(main, heading, errorLine(e)); }
}

// accountPage: the admin's own password and second factor, API keys for
// scripts, and the other admins' accounts.
async function accountPage(main) {
  const heading = h('h2', { text: 'Account' });
  fill(main, heading, h('p', { text: 'Loading…' }));
  let info;
  try { info = await call('GET', '/me'); } catch (e) { fill(main, heading, errorLine(e)); return; }
  fill(main, heading, h('p', { text: `Signed in as ${info.username}.` }),
    passwordCard(), totpCard(main, info), keysCard(), adminsCard(info));
}

function statusLine() {
  return h('p', { class: 'form-status', role: 'status', 'aria-live': 'polite' });
}

function passwordCard() {
  const status = statusLine();
  const cur = h('input', { id: 'pw-current', type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { id: 'pw-new', type: 'password', autocomplete: 'new-password', minlength: '12', required: true });
  const again = h('input', { id: 'pw-again', type: 'password', autocomplete: 'new-password', required: true });
  return h('section', { class: 'card', 'aria-labelledby': 'pw-title' }, h('h3', { id: 'pw-title', text: 'Password' }),
    h('form', { class: 'admin-row', onsubmit: async (ev) => {
      ev.preventDefault();
      if (next.value !== again.value) { status.textContent = 'The new passwords differ.'; return; }
      try {
        await call('PUT', '/me/password', { password: cur.value, new_password: next.value });
        ev.target.reset();
        status.textContent = 'Password changed; your other sessions were signed out.';
      } catch (e) { status.textContent = e.message; }
    } },
    h('div', {}, h('label', { for: 'pw-current', text: 'Current password' }), cur),
    h('div', {}, h('label', { for: 'pw-new', text: 'New password (12 characters or more)' }), next),
    h('div', {}, h('label', { for: 'pw-again', text: 'New password again' }), again),
    h('button', { type: 'submit', class: 'primary', text: 'Change password' })), status);
}

// totpCard sets the second factor up (a secret for an authenticator app,
// proven with one of its codes) or turns it off.
function totpCard(main, info) {
  const status = statusLine();
  const area = h('div');
  const card = h('section', { class: 'card', 'aria-labelledby': 'totp-title' }, h('h3', { id: 'totp-title', text: 'Two-step sign-in' }),
    h('p', { class: 'hint', text: 'A code from an authenticator app (TOTP), asked for at every sign-in after the password.' }), area, status);
  if (info.totp) {
    const pw = h('input', { id: 'totp-off-password', type: 'password', autocomplete: 'current-password', required: true });
    fill(area, h('p', { text: 'On: sign-ins ask for a code from your app.' }),
      h('form', { class: 'admin-row', onsubmit: async (ev) => {
        ev.preventDefault();
        try { await call('DELETE', '/me/totp', { password: pw.value }); accountPage(main); } catch (e) { status.textContent = e.message; }
      } }, h('div', {}, h('label', { for: 'totp-off-password', text: 'Your password' }), pw),
      h('button', { type: 'submit', class: 'danger', text: 'Turn off' })));
    return card;
  }
  const start = async () => {
    try {
      const t = await call('POST', '/me/totp');
      const code = h('input', { id: 'totp-code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '6' });
      const pw = h('input', { id: 'totp-password', type: 'password', autocomplete: 'current-password' });
      fill(area, h('p', { text: 'Add this key to your authenticator app (or open the link on the phone that has it):' }),
        h('p', {}, h('code', { class: 'secret', text: t.secret })),
        h('p', {}, h('a', { href: t.uri, text: 'Open in the authenticator app' })),
        h('form', { class: 'admin-row', onsubmit: async (ev) => {
          ev.preventDefault();
          try {
            await call('PUT', '/me/totp', { secret: t.secret, code: code.value.trim(), password: pw.value });
            await accountPage(main);
            main.append(h('p', { class: 'form-status', role: 'status', text: 'Two-step sign-in is on: sign-ins now ask for a code from the app.' }));
          } catch (e) { status.textContent = e.message; }
        } }, h('div', {}, h('label', { for: 'totp-code', text: 'Code from the app' }), code),
        h('div', {}, h('label', { for: 'totp-password', text: 'Your password' }), pw),
        h('button', { type: 'submit', class: 'primary', text: 'Turn on' })));
      code.focus();
    } catch (e) { status.textContent = e.message; }
  };
  fill(area, h('button', { class: 'primary', text: 'Set up an authenticator app', onclick: start }));
  return card;
}

// keysCard lists the admin's API keys, makes one (its secret shown once)
// and revokes them.
function keysCard() {
  const status = statusLine();
  const list = h('div');
  const name = h('input', { id: 'key-name', maxlength: '100', placeholder: 'backup script', required: true });
  const load = async () => {
    try {
      const r = await call('GET', '/keys');
      fill(list, r.keys.length ? h('table', { class: 'admin-table', 'aria-label': 'API keys' },
        h('thead', {}, h('tr', {}, ['Name', 'Key id', 'Created', ''].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, r.keys.map((k) => h('tr', {},
          h('td', { text: k.name }), h('td', {}, h('code', { text: k.key_id })), h('td', { text: new Date(k.created_at).toLocaleString() }),
          h('td', {}, h('button', { class: 'danger', text: 'Revoke', 'aria-label': `Revoke the key ${k.name}`, onclick: async () => {
            try { await call('DELETE', '/keys/' + encodeURIComponent(k.key_id)); status.textContent = `Key ${k.name} revoked.`; load(); } catch (e) { status.textContent = e.message; }
          } }))))))
        : h('p', { class: 'hint', text: 'No API keys.' }));
    } catch (e) { fill(list, errorLine(e)); }
  };
  load();
  return h('section', { class: 'card', 'aria-labelledby': 'keys-title' }, h('h3', { id: 'keys-title', text: 'API keys' }),
    h('p', { class: 'hint', text: 'For scripts: send "Authorization: Bearer <key>" to /v1/admin. A key acts as you; it cannot make keys.' }),
    list,
    h('form', { class: 'admin-row', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const k = await call('POST', '/keys', { name: name.value.trim() });
        ev.target.reset();
        fill(status, 'New key (shown this once; copy it now): ', h('code', { class: 'secret', text: k.key }));
        load();
      } catch (e) { status.textContent = e.message; }
    } }, h('div', {}, h('label', { for: 'key-name', text: 'Name of a new key' }), name),
    h('button', { type: 'submit', class: 'primary', text: 'Create key' })),
    status);
}

// adminsCard lists the admin accounts; another admin's can be disabled
// (its sessions end, its keys stop) and enabled again.
function adminsCard(info) {
  const status = statusLine();
  const list = h('div');
  const load = async () => {
    try {
      const r = await call('GET', '/admins');
      fill(list, h('table', { class: 'admin-table', 'aria-label': 'Admins' },
        h('thead', {}, h('tr', {}, ['Username', 'Two-step', 'Since', 'State', ''].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, r.admins.map((a) => h('tr', {},
          h('td', { text: a.username }), h('td', { text: a.totp ? 'on' : 'off' }), h('td', { text: new Date(a.created_at).toLocaleDateString() }),
          h('td', { class: a.disabled ? 'banned' : '', text: a.disabled ? 'disabled' : 'active' }),
          h('td', {}, a.admin_id === info.admin_id ? h('span', { class: 'hint', text: 'you' })
            : h('button', { class: a.disabled ? '' : 'danger', text: a.disabled ? 'Enable' : 'Disable',
              'aria-label': `${a.disabled ? 'Enable' : 'Disable'} ${a.username}`, onclick: async () => {
                try {
                  await call(a.disabled ? 'DELETE' : 'PUT', `/admins/${encodeURIComponent(a.admin_id)}/disabled`);
                  status.textContent = `${a.username} ${a.disabled ? 'enabled' : 'disabled'}.`;
                  load();
                } catch (e) { status.textContent = e.message; }
              } })))))));
    } catch (e) { fill(list, errorLine(e)); }
  };
  load();
  return h('section', { class: 'card', 'aria-labelledby': 'admins-title' }, h('h3', { id: 'admins-title', text: 'Admins' }),
    h('p', { class: 'hint', text: 'New accounts, and a reset for a lost password or authenticator: tern admin create / tern admin reset on the server.' }),
    list, status);
}

async function boot() {
  try {
    const r = await call('GET', '/me');
    csrf = r.csrf_token;
    me = r.username;
    showDashboard('overview');
  } catch (e) {
    if (e.status !== 401) showLogin(e.message);
  }
}

boot();
