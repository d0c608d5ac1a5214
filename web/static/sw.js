// Tern's service worker: shows Web Push wake-ups as notifications. A push
// only says that something came (docs/protocol.md, "Push payloads"); the
// page reads the truth from its inbox when it opens.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (ev) => ev.waitUntil(self.clients.claim()));

self.addEventListener('push', (ev) => {
  let data = {};
  try { data = ev.data ? ev.data.json() : {}; } catch { /* not JSON: a bare wake-up */ }
  ev.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    // A visible tab already shows the message.
    if (wins.some((w) => w.visibilityState === 'visible')) return;
    await self.registration.showNotification('Tern', {
      body: data.text || 'New message',
      tag: data.chat_id || 'tern', // one notification per chat, replaced
      renotify: true,
      icon: '/assets/icon.svg',
      data: { chat_id: data.chat_id || '' },
    });
  })());
});

self.addEventListener('notificationclick', (ev) => {
  ev.notification.close();
  const chat = ev.notification.data?.chat_id || '';
  const url = '/' + (chat ? '#chat=' + encodeURIComponent(chat) : '');
  ev.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const w of wins) {
      if (new URL(w.url).origin === self.location.origin) {
        await w.focus();
        w.postMessage({ type: 'open_chat', chat_id: chat });
        return;
      }
    }
    await self.clients.openWindow(url);
  })());
});
