// Entry point: sign in (from the cookie if there is one), then the chats.
import { Api } from './api.js';
import { h, fill } from './dom.js';
import { signIn } from './signin.js';
import { ChatApp } from './chat.js';

const root = document.getElementById('app');
const api = new Api();
let app = null;

api.onSignedOut = () => {
  if (app) app.close();
  app = null;
  showSignIn('You were signed out.');
};

function showSignIn(notice) {
  fill(root, signIn(api, notice, () => showChats()));
  root.removeAttribute('aria-busy');
  root.querySelector('input')?.focus();
  performance.mark('tern-interactive');
}

function showChats() {
  if (app) app.close();
  app = new ChatApp(api, root);
  root.removeAttribute('aria-busy');
  performance.mark('tern-interactive');
}

async function boot() {
  try {
    if (await api.resume()) showChats();
    else showSignIn();
  } catch (e) {
    fill(root, h('p', { class: 'boot-error', role: 'alert', text: 'Tern cannot be reached: ' + e.message }),
      h('button', { class: 'primary', onclick: () => boot(), text: 'Try again' }));
    root.removeAttribute('aria-busy');
  }
}

boot();
