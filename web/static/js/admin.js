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
      showDashboard('users');
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

const pages = { users: 'Users', reports: 'Reports', audit: 'Audit log', account: 'Account' };

function showDashboard(page) {
  const main = h('main', { class: 'admin-main', 'aria-live': 'polite' });
  const nav = h('nav', { class: 'admin-nav', 'aria-label': 'Admin' },
    h('h1', {}, h('img', { src: '/assets/icon.svg', alt: '', width: '24', height: '24' }), 'Tern admin'),
    Object.entries(pages).map(([key, label]) => h('button', {
      'aria-current': key === page ? 'page' : false, text: label, onclick: () => showDashboard(key) })),
    h('span', { class: 'who', text: `Signed in as ${me}` }),
    h('button', { text: 'Sign out', onclick: async () => {
      try { await call('POST', '/logout'); } catch { /* signed out either way */ }
      csrf = '';
      showLogin('Signed out.');
    } }));
  fill(root, h('div', { class: 'admin-shell' }, nav, main));
  root.removeAttribute('aria-busy');
  ({ users: usersPage, reports: reportsPage, audit: auditPage, account: accountPage })[page](main);
}

function errorLine(e) {
  return h('p', { class: 'form-status', role: 'alert', text: e.message });
}

function when(ts) {
  return ts ? new Date(ts).toLocaleString() : '';
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
    status));
}

async function reportsPage(main) {
  fill(main, h('h2', { text: 'Reports' }), h('p', { text: 'Loading…' }));
  try {
    const r = await call('GET', '/reports');
    fill(main, h('h2', { text: 'Reports' }), r.reports.length ? h('table', { class: 'admin-table', 'aria-label': 'Reports' },
      h('thead', {}, h('tr', {}, ['When', 'Reported user', 'Reason', 'Messages'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, r.reports.map((rp) => h('tr', {},
        h('td', { text: when(rp.ts) }), h('td', { text: rp.user_id }), h('td', { text: rp.reason }),
        h('td', {}, (rp.messages || []).map((m) => h('p', { text: m.body?.text || m.body?.caption || '(media)' })))))))
      : h('p', { text: 'No reports.' }));
  } catch (e) { main.append(errorLine(e)); }
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

// accountPage sets up the second factor: a secret for an authenticator
// app, proven with one of its codes.
function accountPage(main) {
  const status = h('p', { class: 'form-status', role: 'status', 'aria-live': 'polite' });
  const area = h('div');
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
            fill(area);
            status.textContent = 'Two-step sign-in is on: sign-ins now ask for a code from the app.';
          } catch (e) { status.textContent = e.message; }
        } }, h('div', {}, h('label', { for: 'totp-code', text: 'Code from the app' }), code),
        h('div', {}, h('label', { for: 'totp-password', text: 'Your password' }), pw),
        h('button', { type: 'submit', class: 'primary', text: 'Turn on' })));
      code.focus();
    } catch (e) { status.textContent = e.message; }
  };
  fill(main, h('h2', { text: 'Account' }), h('p', { text: `Signed in as ${me}.` }),
    h('h3', { text: 'Two-step sign-in' }),
    h('p', { class: 'hint', text: 'A code from an authenticator app (TOTP), asked for at every sign-in after the password.' }),
    h('button', { class: 'primary', text: 'Set up an authenticator app', onclick: start }), area, status);
}

async function boot() {
  try {
    const r = await call('GET', '/me');
    csrf = r.csrf_token;
    me = r.username;
    showDashboard('users');
  } catch (e) {
    if (e.status !== 401) showLogin(e.message);
  }
}

boot();
