// The signed-in app: the chat list, a conversation, the composer. State is
// plain objects kept here; views are built once and changed in place.
import { h, fill, clock, dayKey, dayLabel, listTime, lastSeen } from './dom.js';
import { Socket } from './socket.js';
import { icon } from './icons.js';
import { register as registerPush, enable as enablePush, pushSupported } from './notify.js';

const PAGE = 50;
const TYPING_SHOWN = 6000; // a typing state not renewed by then is over
const TYPING_EVERY = 3000; // how often we renew ours while typing
const RANK = { pending: 0, sent: 1, delivered: 2, read: 3 };
const REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🙏'];

export class ChatApp {
  constructor(api, root) {
    this.api = api;
    this.root = root;
    this.me = { user_id: api.userId, name: '' };
    this.chats = new Map(); // chat_id (or "u:<user>" for a chat not started yet) -> chat
    this.convs = new Map(); // chat key -> {msgs: [], byId: Map, nextBefore, loading, loaded}
    this.status = new Map(); // own msg_id -> {state, delivered: Set, read: Set}
    this.presence = new Map(); // user_id -> {online, last_seen}
    this.typing = new Map(); // chat_id -> {from, until}
    this.names = new Map(); // user_id -> name
    this.pendingActions = new Map(); // send id -> {chat_id, body}
    this.rows = new Map(); // chat key -> its row in the list
    this.refreshGen = 0; // counts chat list requests; chats made since one are kept
    this.current = null;
    this.replyTo = null;
    this.editing = null;
    this.lastTypingSent = 0;
    this.closed = false;
    this.timers = [];
    this.build();
    this.sock = new Socket(api, { frame: (f) => this.onFrame(f), state: (s) => this.onState(s), outbox: () => this.saveOutbox() });
    this.load();
  }

  close() {
    this.closed = true;
    this.sock.stop();
    for (const t of this.timers) clearInterval(t);
    removeEventListener('focus', this.onFocus);
    removeEventListener('beforeunload', this.onUnload);
    document.removeEventListener('visibilitychange', this.onFocus);
  }

  // ---- views ----

  build() {
    this.connBanner = h('div', { class: 'conn', role: 'status', 'aria-live': 'polite', hidden: true });
    this.search = h('input', { type: 'search', 'aria-label': 'Search chats', placeholder: 'Search or start a chat',
      oninput: () => { this.renderChats(); this.renderSearchHint(); } });
    this.searchHint = h('button', { class: 'link search-hint', hidden: true, onclick: () => {
      this.newPhone.value = this.search.value.replace(/[\s().-]/g, '');
      this.newForm.hidden = false; // where the lookup says how it went
      this.search.value = '';
      this.renderChats();
      this.renderSearchHint();
      this.startChat();
    } });
    this.newPhone = h('input', { id: 'newchat-phone', type: 'tel', inputmode: 'tel', placeholder: '+14155550102', required: true });
    this.newStatus = h('p', { class: 'form-status', role: 'status', 'aria-live': 'polite' });
    this.newForm = h('form', { class: 'newchat', hidden: true, onsubmit: (ev) => { ev.preventDefault(); this.startChat(); } },
      h('label', { for: 'newchat-phone', text: 'Phone number' }), this.newPhone,
      h('button', { type: 'submit', class: 'primary', text: 'Start chat' }), this.newStatus);
    this.chatList = h('ul', { class: 'chats', 'aria-label': 'Chats' });
    this.meName = h('span', { class: 'me-name' });
    this.namePrompt = h('div', { class: 'name-prompt', hidden: true },
      h('span', { text: 'Add your name so people know who you are.' }),
      h('button', { class: 'link', text: 'Add name', onclick: () => this.openProfile() }));

    const side = h('section', { class: 'side', 'aria-label': 'Chat list' },
      h('header', { class: 'side-head' },
        h('div', { class: 'me' }, h('img', { src: '/assets/icon.svg', alt: '', width: '28', height: '28' }), this.meName),
        h('div', { class: 'tools' },
          h('button', { class: 'icon', 'aria-label': 'New chat', title: 'New chat', 'aria-expanded': 'false',
            onclick: (ev) => this.toggleNewChat(ev.currentTarget) }, icon('newchat')),
          h('button', { class: 'icon', 'aria-label': 'New group', title: 'New group', onclick: () => this.openNewGroup() }, icon('group')),
          h('button', { class: 'icon', 'aria-label': 'Profile', title: 'Profile', onclick: () => this.openProfile() }, icon('profile')),
          h('button', { class: 'icon', 'aria-label': 'Devices', title: 'Devices', onclick: () => this.openDevices() }, icon('devices')),
          h('button', { class: 'icon', 'aria-label': 'Sign out', title: 'Sign out', onclick: () => this.signOut() }, icon('signout')))),
      this.connBanner, this.namePrompt, this.newForm, h('div', { class: 'search' }, this.search, this.searchHint), this.chatList);

    this.convTitle = h('h2', { class: 'conv-title' });
    this.convSub = h('p', { class: 'conv-sub', 'aria-live': 'polite' });
    this.msgList = h('ol', { class: 'messages', 'aria-label': 'Messages' });
    this.scroller = h('div', { class: 'scroller', onscroll: () => this.onScroll() }, this.msgList);
    this.context = h('div', { class: 'context', hidden: true });
    this.input = h('textarea', { 'aria-label': 'Message', rows: '1', placeholder: 'Message',
      onkeydown: (ev) => this.onKey(ev), oninput: () => this.onInput() });
    this.sendBtn = h('button', { type: 'submit', class: 'send', 'aria-label': 'Send' }, icon('send'));
    this.fileInput = h('input', { type: 'file', multiple: true, hidden: true,
      onchange: () => { this.attach(this.fileInput.files); this.fileInput.value = ''; } });
    this.composer = h('form', { class: 'composer', onsubmit: (ev) => { ev.preventDefault(); this.submit(); } },
      h('button', { type: 'button', class: 'icon', 'aria-label': 'Attach', title: 'Attach a file',
        onclick: () => this.fileInput.click() }, icon('attach')),
      this.fileInput, this.input, this.sendBtn);
    this.conv = h('section', { class: 'conv', 'aria-label': 'Conversation', hidden: true },
      h('header', { class: 'conv-head' },
        h('button', { class: 'icon back', 'aria-label': 'Back', onclick: () => this.closeChat() }, icon('back')),
        h('div', { class: 'conv-who' }, this.convTitle, this.convSub),
        this.infoBtn = h('button', { class: 'icon', 'aria-label': 'Group info', title: 'Group info', hidden: true,
          onclick: () => this.openGroupInfo() }, icon('info'))),
      this.scroller, this.context, this.composer);
    this.conv.addEventListener('dragover', (ev) => { ev.preventDefault(); this.conv.classList.add('drop'); });
    this.conv.addEventListener('dragleave', () => this.conv.classList.remove('drop'));
    this.conv.addEventListener('drop', (ev) => {
      ev.preventDefault();
      this.conv.classList.remove('drop');
      if (ev.dataTransfer?.files?.length) this.attach(ev.dataTransfer.files);
    });
    this.empty = h('section', { class: 'conv-empty' }, h('p', { text: 'Pick a chat, or start one with New chat.' }));
    this.dialog = h('dialog', { class: 'panel', onclose: () => fill(this.dialog) });

    this.el = h('div', { class: 'shell' }, side, this.conv, this.empty, this.dialog);
    fill(this.root, this.el);

    // Messages not yet stored would be lost with the page: ask first.
    this.onUnload = (ev) => {
      if (this.sock.outbox.size > 0) ev.preventDefault();
    };
    addEventListener('beforeunload', this.onUnload);
    this.onFocus = () => this.markRead();
    addEventListener('focus', this.onFocus);
    document.addEventListener('visibilitychange', this.onFocus);
    this.timers.push(setInterval(() => this.expireTyping(), 1000));
  }

  onState(s) {
    const text = { connecting: 'Connecting…', offline: 'Waiting for network…',
      replaced: 'Tern is open in another tab or window.' }[s];
    this.connBanner.hidden = !text;
    fill(this.connBanner, text || '');
    if (s === 'replaced') {
      this.connBanner.append(' ', h('button', { class: 'link', text: 'Use here', onclick: () => this.sock.connectNow() }));
    }
    if (s !== 'online') {
      // What we knew of others' presence is stale until the next
      // presence_sub answers.
      this.presenceSent = false;
    }
    if (s === 'online') {
      this.subscribePresence();
      // A read sent just before the socket went down may not have been
      // taken (a socket closed for its token does not handle the frame
      // that found it expired): say it again; reads are idempotent.
      this.markRead(true);
      // What happened while the socket was down reaches us as inbox
      // events, but a chat list refresh also catches titles and counts.
      this.refreshChats();
    }
  }

  async load() {
    try {
      const [me] = await Promise.all([this.api.call('GET', '/v1/me'), this.refreshChats()]);
      this.me = me;
      this.names.set(me.user_id, me.name);
      this.renderMe();
    } catch (e) {
      if (e.status === 401) return;
      this.toast('Could not load your chats: ' + e.message);
    }
    if (this.me) this.restoreOutbox();
    if (!this.closed) this.sock.start();
    registerPush(this.api, (chatId) => { if (this.chats.has(chatId)) this.openChat(chatId); });
    const m = /^#chat=(.+)$/.exec(location.hash);
    if (m && this.chats.has(decodeURIComponent(m[1]))) this.openChat(decodeURIComponent(m[1]));
  }

  renderMe() {
    this.meName.textContent = this.me.name || this.me.phone || '';
    this.namePrompt.hidden = !!this.me.name;
  }

  async refreshChats() {
    if (this.refreshing) { this.refreshAgain = true; return this.refreshing; }
    this.refreshing = (async () => {
      const started = ++this.refreshGen;
      try {
        const res = await this.api.call('GET', '/v1/chats');
        const seen = new Set();
        for (const c of res.chats) {
          seen.add(c.chat_id);
          const old = this.chats.get(c.chat_id);
          if (old && (old.last_seq || 0) > (c.last_seq || 0)) {
            // Messages came on the socket after this snapshot was taken:
            // keep what they told us of the last message and the count.
            c.last_seq = old.last_seq;
            c.last_message = old.last_message;
            c.unread_count = old.unread_count;
            c.read_seq = Math.max(old.read_seq || 0, c.read_seq || 0);
          }
          const chat = Object.assign(old || {}, c);
          chat.peer = c.kind === 'direct' ? (c.members.find((m) => m !== this.me.user_id) || this.me.user_id) : null;
          chat.activity = c.last_message?.ts || chat.activity || 0;
          if (chat.peer && c.title) this.names.set(chat.peer, c.title);
          this.chats.set(c.chat_id, chat);
          // A chat started from a number becomes the real one.
          if (chat.peer && this.chats.has('u:' + chat.peer)) this.adoptDraft('u:' + chat.peer, chat);
        }
        // Gone from the list: left or deleted. Not chats this tab made or
        // learned of after the request went out.
        for (const [id, c] of this.chats) if (!seen.has(id) && !c.draft && (c.gen || 0) < started) this.chats.delete(id);
        this.renderChats();
        if (this.current) this.renderHead();
        this.subscribePresence();
      } finally {
        this.refreshing = null;
        if (this.refreshAgain) { this.refreshAgain = false; this.refreshChats(); }
      }
    })();
    return this.refreshing;
  }

  adoptDraft(key, chat) {
    const draft = this.chats.get(key);
    this.chats.delete(key);
    const conv = this.convs.get(key);
    if (conv) {
      this.convs.delete(key);
      const real = this.convs.get(chat.chat_id);
      if (!real) this.convs.set(chat.chat_id, conv);
      else for (const m of conv.msgs) this.addMsg(chat.chat_id, m);
    }
    if (this.current === key) { this.current = chat.chat_id; chat.activity = Math.max(chat.activity, draft.activity || 0); }
  }

  sortedChats() {
    const q = this.search.value.trim().toLowerCase();
    return [...this.chats.values()]
      .filter((c) => !q || (c.title || '').toLowerCase().includes(q) || (c.phone || '').includes(q))
      .sort((a, b) => (b.activity || 0) - (a.activity || 0));
  }

  // renderChats updates the list in place, row by row: a row keeps its
  // element (and the keyboard focus) while presence, typing and counts
  // change, and moves only when the order changes.
  renderChats() {
    const keep = new Set();
    let prev = null;
    for (const c of this.sortedChats()) {
      const key = c.chat_id || 'u:' + c.peer;
      keep.add(key);
      let row = this.rows.get(key);
      if (!row) {
        row = this.makeRow(key);
        this.rows.set(key, row);
      }
      this.updateRow(row, c, key);
      const want = prev ? prev.nextSibling : this.chatList.firstChild;
      if (want !== row.li) this.chatList.insertBefore(row.li, want);
      prev = row.li;
    }
    for (const [key, row] of this.rows) {
      if (!keep.has(key)) { row.li.remove(); this.rows.delete(key); }
    }
    const unread = [...this.chats.values()].reduce((n, c) => n + (c.unread_count || 0), 0);
    document.title = unread ? `(${unread}) Tern` : 'Tern';
  }

  // renderSearchHint offers a chat with a number typed into the search.
  renderSearchHint() {
    const p = this.search.value.replace(/[\s().-]/g, '');
    const ok = /^\+[1-9][0-9]{6,14}$/.test(p);
    this.searchHint.hidden = !ok;
    if (ok) this.searchHint.textContent = `Chat with ${p}`;
  }

  makeRow(key) {
    const r = {};
    r.initials = h('span');
    r.avatar = h('span', { class: 'avatar', 'aria-hidden': 'true' }, r.initials);
    r.dot = h('span', { class: 'dot', title: 'online' });
    r.title = h('span', { class: 'chat-title' });
    r.time = h('span', { class: 'chat-time' });
    r.preview = h('span', { class: 'chat-preview' });
    r.badge = h('span', { class: 'badge', role: 'img' });
    r.online = h('span', { class: 'visually-hidden', text: ', online' });
    r.button = h('button', { class: 'chat', 'data-chat-id': key, onclick: () => this.openChat(r.key) },
      r.avatar, h('span', { class: 'chat-main' },
        h('span', { class: 'chat-top' }, r.title, r.time),
        h('span', { class: 'chat-bottom' }, r.preview, r.badge)), r.online);
    r.li = h('li', { class: 'chat-item' }, r.button);
    return r;
  }

  updateRow(r, c, key) {
    r.key = key;
    const t = this.typing.get(c.chat_id);
    const preview = t ? (c.kind === 'group' ? `${this.name(t.from)} is typing…` : 'typing…') : this.preview(c.last_message);
    const online = !!(c.peer && c.peer !== this.me.user_id && this.presence.get(c.peer)?.online);
    set(r.initials, initials(c.title));
    if (online) r.avatar.append(r.dot); else r.dot.remove();
    set(r.title, c.title || 'Chat');
    set(r.time, listTime(c.last_message?.ts));
    set(r.preview, preview);
    r.preview.classList.toggle('typing', !!t);
    r.badge.hidden = !(c.unread_count > 0);
    set(r.badge, String(c.unread_count || 0));
    r.badge.setAttribute('aria-label', `${c.unread_count || 0} unread`);
    r.online.hidden = !online;
    if (key === this.current) r.button.setAttribute('aria-current', 'true');
    else r.button.removeAttribute('aria-current');
    r.button.dataset.chatId = key;
  }

  preview(m) {
    if (!m) return '';
    const b = m.body || {};
    const who = m.from === this.me.user_id ? 'You: ' : '';
    if (b.deleted) return 'This message was deleted';
    if (b.expired) return '';
    if (b.group) return groupChangeText(b.group, (id) => this.name(id));
    if ('disappearing' in b) return b.disappearing ? 'Disappearing messages on' : 'Disappearing messages off';
    if (b.media_id || b.uploading) return who + (b.caption || kindLabel(b.mime_type));
    return who + (b.text || '');
  }

  name(id) {
    if (id === this.me.user_id) return 'You';
    return this.names.get(id) || 'Someone';
  }

  // ---- opening a chat and its history ----

  async openChat(key) {
    const prev = this.chats.get(this.current);
    if (prev) prev.unreadMark = undefined;
    this.current = key;
    const opened = this.chats.get(key);
    // "New messages" goes above the first message not read when the chat
    // was opened, and stays there while it is open.
    if (opened) opened.unreadMark = opened.unread_count > 0 ? (opened.read_seq || 0) : undefined;
    this.replyTo = this.editing = null;
    this.renderContext();
    this.scrolledToMark = false;
    this.conv.hidden = false;
    this.empty.hidden = true;
    this.el.classList.add('show-conv');
    this.renderChats();
    this.renderHead();
    this.renderMessages(true);
    this.input.focus();
    const chat = this.chats.get(key);
    if (chat?.kind === 'group') this.loadGroup(key);
    if (chat?.chat_id && !this.conv_(key).loaded) await this.loadOlder(key);
    this.markRead();
  }

  // loadGroup learns our role (admins may delete others' messages) and
  // the names of members we have no chat with.
  async loadGroup(id) {
    try {
      const g = await this.api.call('GET', `/v1/groups/${encodeURIComponent(id)}`);
      const chat = this.chats.get(id);
      if (chat) chat.myRole = g.members.find((m) => m.user_id === this.me.user_id)?.role;
      const unknown = g.members.map((m) => m.user_id).filter((u) => u !== this.me.user_id && !this.names.has(u)).slice(0, 64);
      await Promise.all(unknown.map(async (u) => {
        try { this.names.set(u, (await this.api.call('GET', `/v1/users/${encodeURIComponent(u)}`)).name || 'Someone'); } catch { /* stays unnamed */ }
      }));
      if (unknown.length && this.current === id) {
        for (const m of this.conv_(id).msgs) m.el = null;
        this.renderMessages(false);
        this.renderHead();
      }
    } catch { /* a group we just left */ }
  }

  closeChat() {
    const prev = this.chats.get(this.current);
    if (prev) prev.unreadMark = undefined;
    this.current = null;
    this.conv.hidden = true;
    this.empty.hidden = false;
    this.el.classList.remove('show-conv');
    this.renderChats();
  }

  conv_(key) {
    let c = this.convs.get(key);
    if (!c) {
      c = { msgs: [], byId: new Map(), nextBefore: 0, loading: false, loaded: false };
      this.convs.set(key, c);
    }
    return c;
  }

  async loadOlder(key) {
    const conv = this.conv_(key);
    if (conv.loading || (conv.loaded && !conv.nextBefore)) return;
    conv.loading = true;
    try {
      const before = conv.loaded ? conv.nextBefore : 0;
      const res = await this.api.call('GET', `/v1/chats/${encodeURIComponent(key)}/messages?limit=${PAGE}` + (before ? `&before=${before}` : ''));
      const keepBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
      for (const m of res.messages) this.addMsg(key, m, true);
      conv.nextBefore = res.next_before;
      conv.loaded = true;
      if (this.current === key) {
        this.renderMessages(before === 0);
        if (before !== 0) this.scroller.scrollTop = this.scroller.scrollHeight - keepBottom;
      }
      this.fetchTicks(key, res.messages);
    } catch (e) {
      this.toast('Could not load messages: ' + e.message);
    } finally {
      conv.loading = false;
    }
  }

  onScroll() {
    if (this.current && this.scroller.scrollTop < 200) this.loadOlder(this.current);
  }

  // fetchTicks asks the server where our newest messages stand: receipts
  // that were acked on another visit are not sent again.
  async fetchTicks(key, msgs) {
    const chat = this.chats.get(key);
    const own = msgs.filter((m) => m.from === this.me.user_id && isShown(m) && !this.status.has(m.msg_id)).slice(0, 20);
    for (const m of own) {
      try {
        const res = await this.api.call('GET', `/v1/chats/${encodeURIComponent(key)}/messages/${encodeURIComponent(m.msg_id)}/receipts`);
        const st = this.stat(m.msg_id);
        for (const r of res.receipts) {
          if (r.delivered_ts) st.delivered.add(r.user_id);
          if (r.read_ts) st.read.add(r.user_id);
        }
        this.settle(m.msg_id, chat, res.receipts.length);
      } catch { /* ticks stay at sent */ }
    }
  }

  stat(id) {
    let s = this.status.get(id);
    if (!s) { s = { state: 'sent', delivered: new Set(), read: new Set() }; this.status.set(id, s); }
    return s;
  }

  // settle turns receipts into a tick: delivered or read once every
  // reader got there (WhatsApp's rule in groups).
  settle(id, chat, readers) {
    const st = this.stat(id);
    const n = readers ?? Math.max(1, (chat?.members?.length || 2) - 1);
    let state = 'sent';
    if (st.read.size >= n) state = 'read';
    else if (st.delivered.size + [...st.read].filter((u) => !st.delivered.has(u)).length >= n) state = 'delivered';
    if (RANK[state] > RANK[st.state]) st.state = state;
    this.updateTick(id);
  }

  // ---- frames ----

  onFrame(f) {
    switch (f.type) {
      case 'message': this.onMessage(f); break;
      case 'sent': this.onSent(f); break;
      case 'receipt': this.onReceipt(f); break;
      case 'typing': this.onTyping(f); break;
      case 'presence': this.onPresence(f); break;
      case 'group': this.refreshChats(); break;
      case 'error':
        if (f.code !== 'unavailable' && f.code !== 'internal') {
          if (this.pendingActions.delete(f.id)) this.toast('Not done: ' + (f.message || f.code));
        }
        this.onError(f);
        break;
    }
  }

  onMessage(m) {
    const b = m.body || {};
    let chat = this.chats.get(m.chat_id);
    if (!chat) {
      // A chat this tab has not seen: the list knows its title.
      chat = { chat_id: m.chat_id, kind: m.chat_id.startsWith('g') ? 'group' : 'direct', title: '', members: [], unread_count: 0,
        gen: this.refreshGen + 1, last_seq: 0 };
      this.chats.set(m.chat_id, chat);
      this.refreshChats();
    }
    if (b.reaction || b.edit || b.delete) {
      this.applyAction(m);
      return;
    }
    if (b.expired) { this.removeMsg(m.chat_id, m.msg_id); return; }
    const isNew = this.addMsg(m.chat_id, m);
    if (!isNew) { this.rerender(m.chat_id, m.msg_id); return; }
    // Beyond what the chat list already counted (a snapshot taken after
    // this event was stored counts it; the inbox replays it anyway).
    const beyond = m.seq > (chat.last_seq || 0);
    if (!chat.last_message || chat.last_message.seq <= m.seq) {
      chat.last_message = m;
      chat.last_seq = m.seq;
      chat.activity = m.ts;
    }
    if (m.from !== this.me.user_id) {
      const t = this.typing.get(m.chat_id);
      if (t && t.from === m.from) this.typing.delete(m.chat_id);
      if (beyond && !(this.current === m.chat_id && this.visible()) && m.seq > (chat.read_seq || 0) && countsUnread(b)) chat.unread_count = (chat.unread_count || 0) + 1;
    }
    if (b.group) this.refreshChats();
    this.renderChats();
    if (this.current === m.chat_id) {
      this.renderMessages(this.nearBottom());
      this.renderHead();
      this.markRead();
    }
  }

  applyAction(m) {
    const b = m.body;
    const targetId = (b.reaction || b.edit || b.delete).msg_id;
    const conv = this.convs.get(m.chat_id);
    const t = conv?.byId.get(targetId);
    if (!t) return; // not loaded: history will show it as it is
    if (b.edit) {
      if (b.deleted) return;
      if (t.body.media_id) t.body.caption = b.edit.text; else t.body.text = b.edit.text;
      t.edited_ts = m.ts;
    } else if (b.delete) {
      t.body = { deleted: true };
      t.reactions = [];
    } else if (b.reaction) {
      const rs = (t.reactions || []).map((r) => ({ emoji: r.emoji, user_ids: r.user_ids.filter((u) => u !== m.from) }))
        .filter((r) => r.user_ids.length);
      if (b.reaction.emoji) {
        const r = rs.find((x) => x.emoji === b.reaction.emoji);
        if (r) r.user_ids.push(m.from); else rs.push({ emoji: b.reaction.emoji, user_ids: [m.from] });
      }
      t.reactions = rs;
    }
    const chat = this.chats.get(m.chat_id);
    if (chat?.last_message?.msg_id === targetId) { chat.last_message = t; this.renderChats(); }
    this.rerender(m.chat_id, targetId);
  }

  // addMsg puts m in its conversation once (by msg_id); false if it was
  // there already (a redelivery, or our own echo).
  addMsg(key, m, fromHistory) {
    const conv = this.conv_(key);
    const old = conv.byId.get(m.msg_id);
    if (old) {
      if (fromHistory || m.edited_ts || m.body?.deleted) Object.assign(old, m, { el: old.el });
      return false;
    }
    if (m.body?.expired) return false;
    if (m.body?.reaction || m.body?.edit || m.body?.delete) return false;
    conv.byId.set(m.msg_id, m);
    // Usually the newest: insert from the end.
    let i = conv.msgs.length;
    while (i > 0 && seqOf(conv.msgs[i - 1]) > m.seq) i--;
    conv.msgs.splice(i, 0, m);
    return true;
  }

  removeMsg(chatId, msgId) {
    const conv = this.convs.get(chatId);
    const m = conv?.byId.get(msgId);
    if (!m) return;
    conv.byId.delete(msgId);
    conv.msgs.splice(conv.msgs.indexOf(m), 1);
    if (this.current === chatId) this.renderMessages(false);
  }

  onSent(f) {
    const act = this.pendingActions.get(f.id);
    if (act) {
      this.pendingActions.delete(f.id);
      this.applyAction({ ...act, msg_id: f.msg_id, seq: f.seq, ts: f.ts, from: this.me.user_id });
      return;
    }
    for (const [key, conv] of this.convs) {
      const m = conv.byId.get(f.id);
      if (!m) continue;
      conv.byId.delete(f.id);
      Object.assign(m, { msg_id: f.msg_id, chat_id: f.chat_id, seq: f.seq, ts: f.ts, pending: false });
      m.el = null; // rebuilt with its id and actions
      if (conv.byId.has(f.msg_id)) {
        // Our other device's echo came first: keep one.
        conv.msgs.splice(conv.msgs.indexOf(m), 1);
      } else {
        conv.byId.set(f.msg_id, m);
        conv.msgs.sort((a, b) => seqOf(a) - seqOf(b));
      }
      const st = this.stat(f.msg_id);
      st.state = RANK[st.state] > RANK.sent ? st.state : 'sent';
      let chat = this.chats.get(key);
      if (key.startsWith('u:')) {
        // The first message of a chat started from a number: now it has
        // an id; the list refresh brings its title.
        chat = this.chats.get(f.chat_id) || Object.assign(chat, { chat_id: f.chat_id, draft: false, gen: this.refreshGen + 1 });
        this.chats.delete(key);
        this.chats.set(f.chat_id, chat);
        this.convs.delete(key);
        if (!this.convs.has(f.chat_id)) this.convs.set(f.chat_id, conv);
        else for (const x of conv.msgs) this.addMsg(f.chat_id, x); // every pending one too
        for (const x of conv.msgs) x.chat_id = f.chat_id;
        if (this.current === key) this.current = f.chat_id;
        this.refreshChats();
      }
      if (chat) {
        chat.last_message = m;
        chat.activity = f.ts;
        chat.last_seq = Math.max(chat.last_seq || 0, f.seq);
      }
      this.renderChats();
      if (this.current === f.chat_id) this.renderMessages(false);
      this.settle(f.msg_id, chat);
      return;
    }
  }

  onError(f) {
    if (!f.id) return;
    for (const conv of this.convs.values()) {
      const m = conv.byId.get(f.id);
      if (m && m.pending) {
        if (f.code === 'unavailable' || f.code === 'internal') return; // sent again on reconnect
        m.failed = f.message || f.code;
        this.rerender(m.chat_id || this.current, f.id);
        return;
      }
    }
    if (f.code === 'rate_limited') this.toast('Slow down a little.');
  }

  onReceipt(f) {
    const chat = this.chats.get(f.chat_id);
    const by = f.user_ids?.length ? f.user_ids : [f.by];
    for (const id of f.msg_ids) {
      const st = this.stat(id);
      for (const u of by) {
        st.delivered.add(u);
        if (f.status === 'read') st.read.add(u);
      }
      this.settle(id, chat);
    }
  }

  updateTick(id) {
    for (const conv of this.convs.values()) {
      const m = conv.byId.get(id);
      if (m?.el) {
        const tick = m.el.querySelector('.tick');
        if (tick) setTick(tick, this.status.get(id)?.state || 'sent');
      }
    }
  }

  onTyping(f) {
    if (f.from === this.me.user_id) return;
    if (f.state === 'typing') this.typing.set(f.chat_id, { from: f.from, until: Date.now() + TYPING_SHOWN });
    else this.typing.delete(f.chat_id);
    this.renderChats();
    if (this.current === f.chat_id) this.renderHead();
  }

  expireTyping() {
    const now = Date.now();
    let changed = false;
    for (const [id, t] of this.typing) if (t.until < now) { this.typing.delete(id); changed = true; }
    if (changed) { this.renderChats(); this.renderHead(); }
    if (this.input.value && this.current && now - this.lastInput > 5000 && this.lastTypingSent) this.stopTyping();
  }

  onPresence(f) {
    this.presence.set(f.user_id, { online: f.online, last_seen: f.last_seen });
    this.renderChats();
    this.renderHead();
  }

  subscribePresence() {
    const ids = new Set();
    for (const c of this.chats.values()) if (c.peer && c.peer !== this.me.user_id) ids.add(c.peer);
    const list = [...ids].slice(0, 256).sort();
    const key = list.join(',');
    if (key === this.presenceKey && this.sock.state === 'online' && this.presenceSent) return;
    this.presenceKey = key;
    this.presenceSent = this.sock.fire({ type: 'presence_sub', user_ids: list });
  }

  // ---- the conversation ----

  renderHead() {
    if (!this.current) return;
    const chat = this.chats.get(this.current);
    this.convTitle.textContent = chat?.title || 'Chat';
    this.infoBtn.hidden = chat?.kind !== 'group';
    const t = this.typing.get(this.current);
    let sub = '';
    if (t) sub = chat?.kind === 'group' ? `${this.name(t.from)} is typing…` : 'typing…';
    else if (chat?.kind === 'group') sub = (chat.members || []).map((u) => this.name(u)).join(', ');
    else if (chat?.peer && chat.peer !== this.me.user_id) {
      const p = this.presence.get(chat.peer);
      sub = p?.online ? 'online' : lastSeen(p?.last_seen);
    } else if (chat?.peer === this.me.user_id) sub = 'Message yourself';
    this.convSub.textContent = sub;
  }

  nearBottom() {
    return this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 120;
  }

  renderMessages(toBottom) {
    if (!this.current) return;
    const conv = this.conv_(this.current);
    const chat = this.chats.get(this.current);
    let mark = chat?.unreadMark;
    // Only where the mark is: with more unread than one page holds, the
    // first unread message is not loaded yet.
    const oldest = conv.msgs[0];
    if (mark !== undefined && oldest && conv.nextBefore && oldest.seq > mark + 1) mark = undefined;
    let prevDay = '';
    let marked = false;
    const els = [];
    for (const m of conv.msgs) {
      if (!isShown(m)) continue;
      if (!m.el) m.el = this.renderMsg(m);
      const day = dayKey(m.ts || Date.now());
      const divs = [];
      if (day !== prevDay) divs.push(h('div', { class: 'divider day', role: 'separator', text: dayLabel(m.ts || Date.now()) }));
      if (!marked && mark !== undefined && m.seq > mark && m.from !== this.me.user_id && !m.pending) {
        divs.push(h('div', { class: 'divider unread', role: 'separator', text: 'New messages' }));
        marked = true;
      }
      prevDay = day;
      const slot = m.el.querySelector('.dividers');
      fill(slot, divs);
      els.push(m.el);
    }
    // Moved, a focused message's button would lose the focus: keep it.
    const focused = this.msgList.contains(document.activeElement) ? document.activeElement : null;
    this.msgList.replaceChildren(...els);
    if (focused?.isConnected && document.activeElement !== focused) focused.focus({ preventScroll: true });
    if (toBottom) {
      const divider = this.msgList.querySelector('.divider.unread');
      if (divider && !this.scrolledToMark) {
        divider.scrollIntoView({ block: 'start' });
        this.scrolledToMark = true;
      } else {
        this.scroller.scrollTop = this.scroller.scrollHeight;
      }
    }
  }

  rerender(chatId, msgId) {
    const m = this.convs.get(chatId)?.byId.get(msgId);
    if (!m || !m.el) return;
    const old = m.el;
    m.el = this.renderMsg(m);
    m.el.querySelector('.dividers').replaceWith(old.querySelector('.dividers'));
    old.replaceWith(m.el);
  }

  renderMsg(m) {
    const b = m.body || {};
    const own = m.from === this.me.user_id;
    const chat = this.chats.get(m.chat_id || this.current);
    const dividers = h('div', { class: 'dividers' });
    if (b.group || 'disappearing' in b) {
      const text = b.group ? groupChangeText(b.group, (id) => this.name(id))
        : b.disappearing ? `Disappearing messages turned on (${durationText(b.disappearing)})` : 'Disappearing messages turned off';
      return h('li', { class: 'msg system', 'data-msg-id': m.msg_id }, dividers, h('p', { class: 'system-text', text }));
    }
    const content = [];
    if (m.reply_to) {
      const q = this.conv_(m.chat_id || this.current).byId.get(m.reply_to);
      content.push(h('button', { type: 'button', class: 'quote', onclick: () => this.scrollTo(m.reply_to) },
        h('span', { class: 'quote-from', text: q ? this.name(q.from) : '' }),
        h('span', { text: q ? this.preview({ ...q, from: '' }) : 'Earlier message' })));
    }
    if (b.forwarded) content.push(h('p', { class: 'forwarded', text: '↪ Forwarded' }));
    if (b.card?.header) content.push(h('p', { class: 'card-header', text: b.card.header }));
    if (b.deleted) {
      content.push(h('p', { class: 'deleted', text: own ? 'You deleted this message' : 'This message was deleted' }));
    } else if (b.uploading) {
      content.push(b.preview ? h('img', { class: 'upload-preview', src: b.preview, alt: b.name })
        : h('p', { class: 'doc-kind', text: b.name }));
      content.push(h('progress', { max: '1', value: String(m.progress || 0), 'aria-label': 'Uploading ' + b.name }));
    } else if (b.media_id) {
      content.push(this.renderMedia(m));
      if (b.caption) content.push(h('p', { class: 'text', text: b.caption }));
    } else {
      content.push(h('p', { class: 'text', text: b.text || '' }));
    }
    if (b.card?.footer) content.push(h('p', { class: 'card-footer', text: b.card.footer }));
    const meta = h('span', { class: 'meta' },
      m.edited_ts && !b.deleted ? h('span', { class: 'edited', text: 'edited' }) : null,
      h('time', { datetime: new Date(m.ts || Date.now()).toISOString(), text: clock(m.ts || Date.now()) }));
    if (own) {
      const tick = h('span', { class: 'tick' });
      setTick(tick, m.pending ? 'pending' : (this.status.get(m.msg_id)?.state || 'sent'));
      meta.append(tick);
    }
    if (m.failed) meta.append(h('span', { class: 'failed', role: 'alert', text: 'Not sent: ' + m.failed }));
    const reactions = (m.reactions || []).length ? h('div', { class: 'reactions' },
      m.reactions.map((r) => h('span', { class: 'reaction', title: r.user_ids.map((u) => this.name(u)).join(', '),
        text: r.emoji + (r.user_ids.length > 1 ? ' ' + r.user_ids.length : '') }))) : null;
    const actions = !m.pending && !b.deleted ? h('button', { class: 'icon more', 'aria-label': 'Message actions', 'aria-haspopup': 'menu',
      onclick: (ev) => this.menu(ev.currentTarget, m) }, icon('more')) : null;
    return h('li', { class: own ? 'msg own' : 'msg', 'data-msg-id': m.msg_id },
      dividers,
      h('div', { class: 'bubble' },
        chat?.kind === 'group' && !own ? h('p', { class: 'from', text: this.name(m.from) }) : null,
        content, meta, reactions),
      b.card ? this.renderChoices(m, own) : null,
      actions);
  }

  // renderChoices is what a business's card offers to tap, under its
  // bubble: reply buttons (3 for interactive messages, up to 10 for a
  // template's quick replies) and the button that opens its list.
  // Only the reader's taps count: on one's own card they are disabled.
  renderChoices(m, own) {
    const card = m.body.card;
    const buttons = (card.buttons || []).map((c) => h('button', { type: 'button', class: 'choice', text: c.title,
      disabled: own, onclick: () => this.choose(m, c) }));
    if (card.list) {
      buttons.push(h('button', { type: 'button', class: 'choice', 'aria-haspopup': 'dialog', disabled: own,
        onclick: (ev) => this.openChoices(m, ev.currentTarget) }, icon('list'), card.list.button));
    }
    return buttons.length ? h('div', { class: 'choices' }, buttons) : null;
  }

  // openChoices shows a card's list: a dialog named by the list's button,
  // its sections under their headings, a row a button named by its title
  // and described by its description. Esc or a choice closes it, and the
  // focus goes back to the button that opened it.
  openChoices(m, opener) {
    const list = m.body.card.list;
    const pick = (c) => { this.dialog.close(); this.choose(m, c); };
    let n = 0;
    const row = (c) => {
      const id = 'choice-desc-' + n++;
      return h('li', {}, h('button', { type: 'button', 'aria-label': c.title, 'aria-describedby': c.description ? id : null,
        onclick: () => pick(c) },
        h('span', { class: 'choice-title', text: c.title }),
        c.description ? h('span', { id, class: 'choice-desc', text: c.description }) : null));
    };
    fill(this.dialog, h('h2', { text: list.button }),
      (list.sections || []).map((s) => h('section', {},
        s.title ? h('h3', { text: s.title }) : null,
        h('ul', { class: 'pick' }, (s.rows || []).map(row)))),
      h('button', { type: 'button', text: 'Cancel', onclick: () => this.dialog.close() }));
    this.showDialog();
    this.dialog.addEventListener('close', () => this.refocus(m, opener), { once: true });
    this.dialog.querySelector('.pick button')?.focus();
  }

  // choose answers a card: a reply to it naming the choice. The server
  // sets the text to the choice's title; ours shows it until then.
  choose(m, c) {
    this.sendTo(m.chat_id, { choice: c.id, text: c.title }, m.msg_id);
  }

  // refocus puts the focus back on the button that opened a card's list
  // (or on its twin, if the card was redrawn meanwhile).
  refocus(m, opener) {
    const el = opener.isConnected ? opener : m.el?.querySelector('.choices button[aria-haspopup]');
    el?.focus({ preventScroll: true });
  }

  renderMedia(m) {
    const b = m.body;
    if (b.thumbnail) {
      return h('button', { class: 'media', 'aria-label': 'Open image', onclick: () => this.openMedia(m) },
        h('img', { src: 'data:image/jpeg;base64,' + b.thumbnail, alt: b.caption || 'Image',
          width: String(b.width || 320), height: String(b.height || 240) }));
    }
    return h('button', { class: 'doc', onclick: () => this.openMedia(m) },
      h('span', { class: 'doc-icon', 'aria-hidden': 'true', text: '📄' }),
      h('span', {}, h('span', { class: 'doc-kind', text: kindLabel(b.mime_type) }), h('span', { class: 'doc-size', text: size(b.size) })),
      h('span', { class: 'visually-hidden', text: 'Download' }));
  }

  async openMedia(m) {
    try {
      const f = await this.api.call('GET', `/v1/media/${encodeURIComponent(m.body.media_id)}?chat_id=${encodeURIComponent(m.chat_id)}`);
      if (f.kind === 'image' || f.kind === 'sticker') {
        fill(this.dialog, h('h2', { class: 'visually-hidden', text: m.body.caption || 'Image' }),
          h('img', { class: 'full', src: f.url, alt: m.body.caption || 'Image' }),
          h('button', { class: 'primary', text: 'Close', onclick: () => this.dialog.close() }));
        this.showDialog();
      } else {
        const a = h('a', { href: f.url, download: '', rel: 'noopener' });
        document.body.append(a);
        a.click();
        a.remove();
      }
    } catch (e) {
      this.toast('Could not open the file: ' + e.message);
    }
  }

  scrollTo(msgId) {
    const m = this.convs.get(this.current)?.byId.get(msgId);
    m?.el?.scrollIntoView({ block: 'center' });
  }

  menu(button, m) {
    const own = m.from === this.me.user_id;
    const chat = this.chats.get(this.current);
    const items = [
      ['Reply', () => { this.replyTo = m; this.editing = null; this.renderContext(); this.input.focus(); }],
      ...REACTIONS.map((e) => [e, () => this.react(m, e), 'React ' + e]),
      ['Forward', () => this.forward(m)],
    ];
    if (own && m.body.text !== undefined && !m.body.choice && Date.now() - m.ts < 15 * 60_000) {
      items.push(['Edit', () => { this.editing = m; this.replyTo = null; this.input.value = m.body.text; this.renderContext(); this.input.focus(); }]);
    }
    if (own || chat?.myRole === 'admin') items.push(['Delete for everyone', () => this.deleteForEveryone(m)]);
    items.push(['Delete for me', () => this.deleteForMe(m)]);
    // A menu as ARIA's menu pattern has it: arrows move between items
    // (round the ends), Home and End jump, Esc and Tab leave it.
    const move = (ev) => {
      const buttons = [...list.querySelectorAll('[role="menuitem"]')];
      const i = buttons.indexOf(document.activeElement);
      const to = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: buttons.length - 1 }[ev.key];
      if (ev.key === 'Escape' || ev.key === 'Tab') { ev.preventDefault(); close(); return; }
      if (to === undefined) return;
      ev.preventDefault();
      buttons[(to + buttons.length) % buttons.length].focus();
    };
    const list = h('div', { class: 'menu', role: 'menu', 'aria-label': 'Message actions', onkeydown: move },
      items.map(([label, fn, aria]) => h('button', { role: 'menuitem', tabindex: '-1', 'aria-label': aria || label, text: label,
        onclick: () => { close(); fn(); } })));
    const close = () => { list.remove(); removeEventListener('pointerdown', away, true); button.focus(); };
    const away = (ev) => { if (!list.contains(ev.target)) close(); };
    addEventListener('pointerdown', away, true);
    button.after(list);
    list.querySelector('button').focus();
  }

  react(m, emoji) {
    const mine = (m.reactions || []).find((r) => r.user_ids.includes(this.me.user_id));
    this.action(m, { reaction: { msg_id: m.msg_id, emoji: mine?.emoji === emoji ? '' : emoji } });
  }

  deleteForEveryone(m) { this.action(m, { delete: { msg_id: m.msg_id } }); }

  async deleteForMe(m) {
    try {
      await this.api.call('DELETE', `/v1/chats/${encodeURIComponent(m.chat_id)}/messages/${encodeURIComponent(m.msg_id)}`);
      this.removeMsg(m.chat_id, m.msg_id);
    } catch (e) {
      this.toast('Could not delete: ' + e.message);
    }
  }

  forward(m) {
    const chats = this.sortedChats().filter((c) => c.chat_id);
    fill(this.dialog, h('h2', { text: 'Forward to' }),
      h('ul', { class: 'pick', 'aria-label': 'Forward to' }, chats.map((c) => h('li', {},
        h('button', { text: c.title || 'Chat', onclick: () => {
          this.dialog.close();
          const body = m.body.media_id ? { media_id: m.body.media_id, caption: m.body.caption, forwarded: true }
            : { text: m.body.text, forwarded: true };
          if (!body.caption) delete body.caption;
          this.sendTo(c.chat_id, body);
        } })))),
      h('button', { text: 'Cancel', onclick: () => this.dialog.close() }));
    this.showDialog();
  }

  // saveOutbox keeps the sends not yet stored in this tab's session
  // storage: a reload sends them again by their ids (the server answers a
  // send it already stored with its first answer, so nothing doubles).
  // The tab's storage only: it goes with the tab, and sign-out clears it.
  saveOutbox() {
    if (!this.me) return;
    const key = 'tern.outbox.' + this.me.user_id;
    try {
      if (this.sock.outbox.size === 0) sessionStorage.removeItem(key);
      else sessionStorage.setItem(key, JSON.stringify([...this.sock.outbox.values()]));
    } catch { /* storage full or off: the page still warns before it closes */ }
  }

  // restoreOutbox puts back what a reload left unsent, shown pending.
  restoreOutbox() {
    let frames = [];
    try { frames = JSON.parse(sessionStorage.getItem('tern.outbox.' + this.me.user_id) || '[]'); } catch { return; }
    for (const f of Array.isArray(frames) ? frames : []) {
      if (f?.type !== 'send' || typeof f.id !== 'string' || typeof f.to !== 'string' || !f.body) continue;
      const key = [...this.chats.keys()].find((k) => toOf(this.chats.get(k)) === f.to);
      const chat = key && this.chats.get(key);
      if (f.body.reaction || f.body.edit || f.body.delete) {
        if (chat) this.pendingActions.set(f.id, { chat_id: chat.chat_id, body: f.body });
        this.sock.send(f);
        continue;
      }
      this.sock.send(f);
      if (!chat) continue; // a first message to a new chat: it shows once stored
      const m = { msg_id: f.id, chat_id: chat.chat_id, seq: Number.MAX_SAFE_INTEGER, from: this.me.user_id,
        ts: Date.now(), body: f.body, reply_to: f.reply_to, pending: true };
      this.conv_(key).byId.set(f.id, m);
      this.conv_(key).msgs.push(m);
      chat.last_message = m;
    }
    this.renderChats();
  }

  // action sends a reaction, edit or delete. The server sends its entry to
  // our other devices only: this one applies it once it is `sent`.
  action(m, body) {
    const chat = this.chats.get(m.chat_id);
    const sent = this.sock.send({ to: toOf(chat), body });
    this.pendingActions.set(sent.id, { chat_id: m.chat_id, body });
  }

  renderContext() {
    const m = this.replyTo || this.editing;
    this.context.hidden = !m;
    if (!m) { fill(this.context); return; }
    fill(this.context,
      h('span', { class: 'context-label', text: this.editing ? 'Editing' : `Replying to ${this.name(m.from)}` }),
      h('span', { class: 'context-text', text: this.preview({ ...m, from: '' }) }),
      h('button', { class: 'icon', 'aria-label': this.editing ? 'Cancel edit' : 'Cancel reply', onclick: () => {
        if (this.editing) this.input.value = '';
        this.replyTo = this.editing = null;
        this.renderContext();
      } }, icon('close')));
  }

  onKey(ev) {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      this.submit();
    } else if (ev.key === 'Escape') {
      if (this.replyTo || this.editing) {
        if (this.editing) this.input.value = '';
        this.replyTo = this.editing = null;
        this.renderContext();
      } else if (matchMedia('(max-width: 720px)').matches) this.closeChat();
    }
  }

  onInput() {
    this.lastInput = Date.now();
    const chat = this.chats.get(this.current);
    if (!chat?.chat_id || !this.input.value.trim()) return;
    if (Date.now() - this.lastTypingSent > TYPING_EVERY) {
      if (this.sock.fire({ type: 'typing', chat_id: chat.chat_id, state: 'typing' })) this.lastTypingSent = Date.now();
    }
  }

  stopTyping() {
    const chat = this.chats.get(this.current);
    if (this.lastTypingSent && chat?.chat_id) this.sock.fire({ type: 'typing', chat_id: chat.chat_id, state: 'paused' });
    this.lastTypingSent = 0;
  }

  submit() {
    const text = this.input.value.trim();
    if (!text || !this.current) return;
    const chat = this.chats.get(this.current);
    if (this.editing) {
      this.action(this.editing, { edit: { msg_id: this.editing.msg_id, text } });
      this.editing = null;
    } else {
      this.sendTo(this.current, { text }, this.replyTo?.msg_id);
      this.replyTo = null;
    }
    this.input.value = '';
    this.renderContext();
    if (chat) this.stopTyping();
  }

  // attach uploads files and sends each as a message once it is stored;
  // the message shows at once, with the upload's progress.
  attach(files) {
    if (!this.current) return;
    for (const file of files) this.sendFile(this.current, file);
  }

  sendFile(key, file) {
    const chat = this.chats.get(key);
    const conv = this.conv_(key);
    const tmp = 'up' + Math.random().toString(36).slice(2);
    const image = file.type.startsWith('image/');
    const m = { msg_id: tmp, chat_id: chat.chat_id, seq: Number.MAX_SAFE_INTEGER, from: this.me.user_id, ts: Date.now(),
      body: { uploading: true, name: file.name, mime_type: file.type, size: file.size, preview: image ? URL.createObjectURL(file) : null },
      pending: true, progress: 0 };
    conv.byId.set(tmp, m);
    conv.msgs.push(m);
    if (this.current === key) this.renderMessages(true);
    const kind = image ? 'image' : file.type.startsWith('video/') ? 'video' : file.type.startsWith('audio/') ? 'audio' : 'document';
    const done = (res) => {
      if (m.body.preview) URL.revokeObjectURL(m.body.preview);
      const body = { media_id: res.media_id };
      // The chat may have got its id (a first message) while this uploaded.
      const now = this.chats.get(m.chat_id || key) || chat;
      const cv = [...this.convs.values()].find((c) => c.byId.get(tmp) === m) || conv;
      const sent = this.sock.send({ to: toOf(now), body });
      cv.byId.delete(tmp);
      m.msg_id = sent.id;
      m.body = { media_id: res.media_id, mime_type: res.mime_type, size: res.size, thumbnail: res.thumbnail, width: res.width, height: res.height };
      cv.byId.set(sent.id, m);
      chat.last_message = m;
      chat.activity = Date.now();
      this.renderChats();
      this.rerender(m.chat_id || key, sent.id);
    };
    const fail = (msg) => {
      m.failed = msg;
      this.rerender(m.chat_id || key, tmp);
    };
    const send = (retried) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/v1/media?kind=' + kind);
      xhr.setRequestHeader('Authorization', 'Bearer ' + this.api.token);
      xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
      xhr.upload.onprogress = (ev) => {
        if (!ev.lengthComputable) return;
        m.progress = ev.loaded / ev.total;
        const bar = m.el?.querySelector('progress');
        if (bar) bar.value = m.progress;
      };
      xhr.onload = () => {
        let res = null;
        try { res = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
        if (xhr.status === 201 && res?.media_id) done(res);
        else if (xhr.status === 401 && !retried) this.api.refresh().then(() => send(true), () => fail('signed out'));
        else fail(res?.error?.message || 'upload failed (' + xhr.status + ')');
      };
      xhr.onerror = () => fail('the upload was cut off');
      xhr.send(file);
    };
    send(false);
  }

  // sendTo shows the message at once (pending) and sends it; the socket
  // keeps it until the server answers.
  sendTo(key, body, replyTo) {
    const chat = this.chats.get(key);
    const frame = { to: toOf(chat), body };
    if (replyTo) frame.reply_to = replyTo;
    const sent = this.sock.send(frame);
    const m = { msg_id: sent.id, chat_id: chat.chat_id, seq: Number.MAX_SAFE_INTEGER, from: this.me.user_id,
      ts: Date.now(), body, reply_to: replyTo, pending: true };
    this.conv_(key).byId.set(sent.id, m);
    this.conv_(key).msgs.push(m);
    chat.last_message = m;
    chat.activity = m.ts;
    this.renderChats();
    if (this.current === key) this.renderMessages(true);
  }

  visible() { return document.visibilityState === 'visible' && document.hasFocus(); }

  // markRead tells the server we saw the open chat up to its newest message.
  markRead(again) {
    if (!this.current || !this.visible()) return;
    const chat = this.chats.get(this.current);
    const conv = this.convs.get(this.current);
    if (!chat?.chat_id || !conv) return;
    let seq = 0;
    for (const m of conv.msgs) if (!m.pending && m.seq > seq) seq = m.seq;
    if (seq > (chat.read_seq || 0) || (again && seq > 0)) {
      if (this.sock.fire({ type: 'read', chat_id: chat.chat_id, seq })) {
        chat.read_seq = seq;
        chat.unread_count = 0;
        this.renderChats();
      }
    }
  }

  // ---- panels ----

  toggleNewChat(btn) {
    const open = this.newForm.hidden;
    this.newForm.hidden = !open;
    btn.setAttribute('aria-expanded', String(open));
    this.newStatus.textContent = '';
    if (open) this.newPhone.focus();
  }

  async startChat() {
    const phone = this.newPhone.value.replace(/[\s().-]/g, '');
    if (!/^\+[1-9][0-9]{6,14}$/.test(phone)) {
      this.newStatus.textContent = 'Enter the number with + and the country code.';
      return;
    }
    this.newStatus.textContent = 'Looking up…';
    try {
      const res = await this.api.call('POST', '/v1/contacts/lookup', { phones: [phone] });
      const c = res.contacts[0];
      if (!c) { this.newStatus.textContent = 'No one on Tern has this number yet.'; return; }
      if (c.name) this.names.set(c.user_id, c.name);
      let chat = [...this.chats.values()].find((x) => x.kind === 'direct' && x.peer === c.user_id);
      if (!chat) {
        chat = { chat_id: null, draft: true, kind: 'direct', peer: c.user_id, title: c.name || phone, phone,
          members: [this.me.user_id, c.user_id], unread_count: 0, activity: Date.now() };
        this.chats.set('u:' + c.user_id, chat);
        this.subscribePresence();
      }
      this.newForm.hidden = true;
      this.el.querySelector('button[aria-label="New chat"]').setAttribute('aria-expanded', 'false');
      this.newPhone.value = '';
      this.newStatus.textContent = '';
      this.openChat(chat.chat_id || 'u:' + c.user_id);
    } catch (e) {
      this.newStatus.textContent = e.message;
    }
  }

  // lookupPhones turns numbers into users; numbers nobody has are named.
  async lookupPhones(text) {
    const phones = text.split(/[\s,;]+/).map((p) => p.replace(/[().-]/g, '')).filter(Boolean);
    const bad = phones.filter((p) => !/^\+[1-9][0-9]{6,14}$/.test(p));
    if (bad.length) throw new Error(`Not a phone number with + and country code: ${bad.join(', ')}`);
    if (!phones.length) return [];
    const res = await this.api.call('POST', '/v1/contacts/lookup', { phones });
    const found = new Map(res.contacts.map((c) => [c.phone, c]));
    const missing = phones.filter((p) => !found.has(p));
    if (missing.length) throw new Error(`No one on Tern has ${missing.join(', ')}`);
    for (const c of res.contacts) if (c.name) this.names.set(c.user_id, c.name);
    return res.contacts.map((c) => c.user_id);
  }

  openNewGroup() {
    const name = h('input', { id: 'group-name', maxlength: '100', required: true });
    const members = h('textarea', { id: 'group-members', rows: '3', placeholder: '+14155550102, +14155550103' });
    const status = h('p', { class: 'form-status', role: 'status' });
    fill(this.dialog, h('form', { onsubmit: async (ev) => {
      ev.preventDefault();
      status.textContent = 'Creating…';
      try {
        const ids = await this.lookupPhones(members.value);
        const g = await this.api.call('POST', '/v1/groups', { name: name.value.trim(), members: ids });
        this.dialog.close();
        if (g.not_added?.length) this.toast(`${g.not_added.length} people could not be added (their privacy settings).`);
        await this.refreshChats();
        if (!this.chats.has(g.chat_id)) this.chats.set(g.chat_id, { chat_id: g.chat_id, kind: 'group', title: g.name, members: g.members.map((m) => m.user_id), unread_count: 0, activity: Date.now() });
        this.openChat(g.chat_id);
      } catch (e) { status.textContent = e.message; }
    } }, h('h2', { text: 'New group' }),
    h('label', { for: 'group-name', text: 'Group name' }), name,
    h('label', { for: 'group-members', text: 'Members\' phone numbers' }), members, status,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', text: 'Create group' }),
      h('button', { type: 'button', text: 'Cancel', onclick: () => this.dialog.close() }))));
    this.showDialog();
    name.focus();
  }

  async openGroupInfo() {
    const id = this.current;
    let g;
    try { g = await this.api.call('GET', `/v1/groups/${encodeURIComponent(id)}`); } catch (e) { this.toast(e.message); return; }
    const chat = this.chats.get(id);
    const me = g.members.find((m) => m.user_id === this.me.user_id);
    const admin = me?.role === 'admin';
    if (chat) chat.myRole = me?.role;
    const status = h('p', { class: 'form-status', role: 'status' });
    const act = async (fn) => {
      try { await fn(); this.dialog.close(); this.refreshChats(); this.openGroupInfo(); } catch (e) { status.textContent = e.message; }
    };
    const gid = encodeURIComponent(id);
    const rows = g.members.map((m) => h('li', {},
      h('span', { class: 'dev-name', text: this.name(m.user_id) + (m.role === 'admin' ? ' · admin' : '') }),
      admin && m.user_id !== this.me.user_id ? h('span', { class: 'row' },
        m.role === 'admin'
          ? h('button', { text: 'Dismiss as admin', 'aria-label': `Dismiss ${this.name(m.user_id)} as admin`, onclick: () => act(() => this.api.call('DELETE', `/v1/groups/${gid}/admins/${encodeURIComponent(m.user_id)}`)) })
          : h('button', { text: 'Make admin', 'aria-label': `Make ${this.name(m.user_id)} admin`, onclick: () => act(() => this.api.call('PUT', `/v1/groups/${gid}/admins/${encodeURIComponent(m.user_id)}`)) }),
        h('button', { text: 'Remove', 'aria-label': `Remove ${this.name(m.user_id)}`, onclick: () => act(() => this.api.call('DELETE', `/v1/groups/${gid}/members/${encodeURIComponent(m.user_id)}`)) })) : null));
    const add = h('input', { id: 'group-add', type: 'tel', placeholder: '+14155550104' });
    fill(this.dialog, h('h2', { text: g.name }),
      g.description ? h('p', { class: 'hint', text: g.description }) : null,
      h('h3', { text: `${g.members.length} members` }),
      h('ul', { class: 'devices', 'aria-label': 'Members' }, rows),
      admin ? h('form', { onsubmit: (ev) => { ev.preventDefault(); act(async () => {
        const ids = await this.lookupPhones(add.value);
        const res = await this.api.call('POST', `/v1/groups/${gid}/members`, { user_ids: ids });
        if (res.not_added?.length) this.toast('Their privacy settings do not let you add them.');
      }); } }, h('label', { for: 'group-add', text: 'Add member' }), add,
      h('button', { type: 'submit', class: 'primary', text: 'Add' })) : null,
      status,
      h('div', { class: 'row' },
        h('button', { text: 'Leave group', class: 'danger', onclick: async () => {
          try {
            await this.api.call('DELETE', `/v1/groups/${gid}/members/${encodeURIComponent(this.me.user_id)}`);
            this.dialog.close();
            this.closeChat();
            this.refreshChats();
          } catch (e) { status.textContent = e.message; }
        } }),
        h('button', { class: 'primary', text: 'Close', onclick: () => this.dialog.close() })));
    this.showDialog();
  }

  openProfile() {
    const name = h('input', { id: 'profile-name', value: this.me.name || '', maxlength: '64', autocomplete: 'name' });
    const status = h('p', { class: 'form-status', role: 'status' });
    fill(this.dialog, h('form', { method: 'dialog', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        this.me = await this.api.call('PATCH', '/v1/me', { name: name.value.trim() });
        this.renderMe();
        this.dialog.close();
      } catch (e) { status.textContent = e.message; }
    } }, h('h2', { text: 'Profile' }), h('p', { class: 'hint', text: this.me.phone || '' }),
    h('label', { for: 'profile-name', text: 'Your name' }), name, status,
    pushSupported() && Notification.permission !== 'granted' ? h('button', { type: 'button', text: 'Turn on notifications',
      onclick: async () => { status.textContent = await enablePush(this.api); } }) : null,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', text: 'Save' }),
      h('button', { type: 'button', text: 'Cancel', onclick: () => this.dialog.close() }))));
    this.showDialog();
    name.focus();
  }

  async openDevices() {
    fill(this.dialog, h('h2', { text: 'Devices' }), h('p', { text: 'Loading…' }));
    this.showDialog();
    try {
      const res = await this.api.call('GET', '/v1/devices');
      const list = h('ul', { class: 'devices', 'aria-label': 'Devices' }, res.devices.map((d) => h('li', {},
        h('span', { class: 'dev-name', text: `${d.name || d.platform}${d.current ? ' (this browser)' : ''}` }),
        h('span', { class: 'dev-seen', text: d.online ? 'online' : lastSeen(d.last_seen) }),
        d.current ? null : h('button', { text: 'Sign out', 'aria-label': `Sign out ${d.name || d.platform}`, onclick: async (ev) => {
          try {
            await this.api.call('DELETE', `/v1/devices/${encodeURIComponent(d.device_id)}`);
            ev.target.closest('li').remove();
          } catch (e) { this.toast(e.message); }
        } }))));
      fill(this.dialog, h('h2', { text: 'Devices' }), list,
        h('button', { class: 'primary', text: 'Close', onclick: () => this.dialog.close() }));
    } catch (e) {
      fill(this.dialog, h('p', { text: e.message }), h('button', { text: 'Close', onclick: () => this.dialog.close() }));
    }
  }

  async signOut() {
    try {
      await this.api.logout(); // closes this app through onSignedOut
    } catch (e) {
      this.toast('Could not sign out: ' + e.message);
    }
  }

  // showDialog opens the panel named by its heading, for assistive tools.
  showDialog() {
    const title = this.dialog.querySelector('h2');
    if (title) {
      title.id = 'dialog-title';
      this.dialog.setAttribute('aria-labelledby', 'dialog-title');
    } else {
      this.dialog.removeAttribute('aria-labelledby');
    }
    if (!this.dialog.open) this.dialog.showModal();
  }

  toast(text) {
    const t = h('div', { class: 'toast', role: 'alert', text });
    this.el.append(t);
    setTimeout(() => t.remove(), 5000);
  }
}

// set changes an element's text only when it differs (no needless
// mutation for assistive tools to announce).
function set(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function setTick(el, state) {
  el.setAttribute('role', 'img');
  el.setAttribute('aria-label', state);
  el.dataset.state = state;
  if (state === 'pending') el.replaceChildren(icon('clock'));
  else el.textContent = state === 'sent' ? '✓' : '✓✓';
}

function toOf(chat) {
  if (!chat) throw new Error('no such chat');
  return chat.kind === 'group' ? chat.chat_id : chat.peer;
}

function seqOf(m) { return m.seq ?? Number.MAX_SAFE_INTEGER; }

function isShown(m) {
  const b = m.body || {};
  return !b.expired && !b.reaction && !b.edit && !b.delete && !(m.expires_ts && m.expires_ts < Date.now());
}

function countsUnread(b) { return !b.group && !('disappearing' in b); }

function initials(title) {
  const parts = (title || '?').trim().split(/\s+/);
  return (parts[0][0] + (parts[1]?.[0] || '')).toUpperCase();
}

function kindLabel(mime) {
  if (!mime) return 'File';
  if (mime.startsWith('image/')) return 'Photo';
  if (mime.startsWith('video/')) return 'Video';
  if (mime.startsWith('audio/')) return 'Audio';
  if (mime === 'application/pdf') return 'PDF document';
  return 'Document';
}

function size(n) {
  if (!n) return '';
  if (n < 1024) return n + ' B';
  if (n < 1 << 20) return (n / 1024).toFixed(0) + ' KB';
  return (n / (1 << 20)).toFixed(1) + ' MB';
}

function durationText(s) {
  return s >= 86400 * 90 ? '90 days' : s >= 86400 * 7 ? '7 days' : '24 hours';
}

function groupChangeText(g, name) {
  const who = (g.user_ids || []).map(name).join(', ');
  switch (g.change) {
    case 'created': return `${name(g.by)} created the group`;
    case 'members_added': return `${name(g.by)} added ${who}`;
    case 'member_removed': return `${name(g.by)} removed ${who}`;
    case 'member_left': return `${who || name(g.by)} left`;
    case 'admin_added': return `${who} is now an admin`;
    case 'admin_removed': return `${who} is no longer an admin`;
    case 'info_changed': return `${name(g.by)} changed the group info`;
    case 'settings_changed': return `${name(g.by)} changed the group settings`;
    case 'deleted': return 'The group was deleted by the service’s administrators';
    default: return 'The group changed';
  }
}
