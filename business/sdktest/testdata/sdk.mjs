// Drives a local Tern node's business API with a real Cloud API SDK,
// @great-detail/whatsapp (pinned in package.json beside this file), as a
// company's system would: its webhook server answers Tern's verification
// with the SDK's register() and checks every POST with its
// eventNotification() signature check; everything it sends goes through
// the SDK's own calls. Run by sdk_test.go from the directory where the SDK
// is installed, with the environment:
//
//	TERN_URL    the node, http://127.0.0.1:PORT
//	TOKEN       the business's access token
//	PNID, WABA  its phone_number_id and WABA id
//	APP_SECRET  the webhooks' signing secret
//	CUSTOMER    the customer's number, digits only
//	CUSTOMER_NAME  the customer's profile name
//
// It prints one JSON object per line on stdout, a result per step, the
// last one {"done": true, ...}; on any failure it says why on stderr and
// exits 1.
import http from "node:http";
import crypto from "node:crypto";
import zlib from "node:zlib";
import Client from "@great-detail/whatsapp";

// What fail() prints besides its message: each request Tern made to the
// webhook, and each request an SDK client made ("METHOD /path?query").
const webhookLog = [];
const requests = [];

const env = (name) => {
  const v = process.env[name];
  if (!v) fail(`${name} is not set`);
  return v;
};
const TERN = env("TERN_URL").replace(/\/$/, "");
const TOKEN = env("TOKEN");
const PNID = env("PNID");
const WABA = env("WABA");
const APP_SECRET = env("APP_SECRET");
const CUSTOMER = env("CUSTOMER");
const CUSTOMER_NAME = env("CUSTOMER_NAME");
const VERIFY_TOKEN = "tern-sdk-verify-7f3a";
const HELLO = "hello \u{1F44B}";
const THUMBS_UP = "\u{1F44D}";
const GRAPH_VERSION = "v23.0";
const STEP_TIMEOUT = 20_000; // a webhook or status that does not come
const OVERALL = 75_000; // sdk_test.go kills the script at 90 s

const t0 = Date.now();
// out prints one result line, with ms: the milliseconds since the start.
function out(obj) {
  process.stdout.write(JSON.stringify({ ...obj, ms: Date.now() - t0 }) + "\n");
}

function fail(msg, err) {
  let detail = "";
  if (err) {
    detail = `: ${err.name ?? "Error"}: ${err.message}`;
    if (err.data !== undefined) detail += ` | body ${JSON.stringify(err.data)}`;
    if (err.cause) detail += ` | cause ${err.cause?.message ?? err.cause}`;
  }
  process.stderr.write(`sdk.mjs: FAIL: ${msg}${detail}\n`);
  if (webhookLog.length) {
    process.stderr.write(`sdk.mjs: webhook requests so far:\n  ${webhookLog.join("\n  ")}\n`);
  }
  if (requests.length) {
    process.stderr.write(`sdk.mjs: SDK requests so far:\n  ${requests.join("\n  ")}\n`);
  }
  process.exit(1);
}

function check(cond, msg) {
  if (!cond) fail(msg);
}

const overall = setTimeout(() => fail(`not done within ${OVERALL / 1000} s`), OVERALL);

// recordingFetch is fetch, noting each request in requests, so that the
// output shows which URL forms reached Tern.
function recordingFetch(tag) {
  return (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = (input instanceof Request ? input.method : init?.method) ?? "GET";
    requests.push(`${tag} ${method} ${url.pathname}${url.search}`);
    return fetch(input, init);
  };
}

const auth = { Authorization: `Bearer ${TOKEN}` };
// The SDK's defaults: baseUrl + "/" + graphVersion joined by ky, which
// drops the version (ky resolves paths against a base URL without a
// trailing slash), so these requests go to /{id}/... .
const plain = new Client({ baseUrl: TERN, request: { headers: auth, retry: 0, fetch: recordingFetch("plain") } });
// The version kept in the path, /v23.0/{id}/... : graphVersion with a
// trailing slash.
const sdk = new Client({
  baseUrl: TERN,
  graphVersion: `${GRAPH_VERSION}/`,
  request: { headers: auth, retry: 0, fetch: recordingFetch("versioned") },
});
// The same through ky's own prefix option.
const prefixed = new Client({
  baseUrl: TERN,
  request: { headers: auth, prefix: GRAPH_VERSION, retry: 0, fetch: recordingFetch("prefix") },
});

// ---- The webhook server: the SDK's register() and eventNotification().

const messages = []; // inbound messages, as the webhooks carried them
const statuses = new Map(); // wamid -> [status, ...] in arrival order
let posts = 0;
let badSignatures = 0;
let verifications = 0;
let refusedVerifications = 0;
const faults = []; // payloads that are not what the Cloud API sends

async function onWebhook(req, res, raw) {
  const url = new URL(req.url, "http://webhook");
  const incoming = {
    method: req.method,
    query: Object.fromEntries(url.searchParams),
    body: raw,
    headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), String(v)])),
  };
  if (req.method === "GET") {
    let reg;
    try {
      reg = await plain.webhook.register(incoming);
    } catch (e) {
      webhookLog.push(`GET ${url.search}: refused by the SDK (${e.name}: ${e.message})`);
      res.writeHead(400).end();
      return;
    }
    if (reg.verifyToken !== VERIFY_TOKEN) {
      refusedVerifications++;
      webhookLog.push(`GET: verify token ${JSON.stringify(reg.verifyToken)} refused`);
      res.writeHead(403).end(String(reg.reject() ?? ""));
      return;
    }
    verifications++;
    webhookLog.push(`GET: challenge answered`);
    res.writeHead(200, { "content-type": "text/plain" }).end(reg.accept());
    return;
  }
  posts++;
  let ev;
  try {
    ev = await plain.webhook.eventNotification(incoming);
  } catch (e) {
    badSignatures++;
    webhookLog.push(`POST: refused by the SDK (${e.name}: ${e.message})`);
    res.writeHead(400).end();
    return;
  }
  if (!(await ev.checkSignature(APP_SECRET))) {
    badSignatures++;
    const want = await ev.signature.sha256.getCalculatedSignature(APP_SECRET);
    webhookLog.push(`POST: BAD SIGNATURE ${incoming.headers["x-hub-signature-256"]}, the SDK computed sha256=${want} over ${raw.length} chars`);
    // Answered 200 all the same: the queue goes on, and the run fails
    // at its end (or at the wait this breaks), saying why.
    res.writeHead(200).end();
    return;
  }
  const n = ev.eventNotification;
  for (const entry of n.entry ?? []) {
    if (n.object !== "whatsapp_business_account" || entry.id !== WABA) faults.push(`entry ${entry.id} of ${n.object}`);
    for (const change of entry.changes ?? []) {
      const v = change.value ?? {};
      if (change.field !== "messages" || v.messaging_product !== "whatsapp" || v.metadata?.phone_number_id !== PNID) {
        faults.push(`change ${JSON.stringify(change).slice(0, 200)}`);
      }
      for (const m of v.messages ?? []) {
        messages.push({ ...m, contact: v.contacts?.[0] });
        webhookLog.push(`POST: message ${m.id} ${m.type}`);
      }
      for (const s of v.statuses ?? []) {
        if (!statuses.has(s.id)) statuses.set(s.id, []);
        statuses.get(s.id).push(s.status);
        if (s.recipient_id !== CUSTOMER) faults.push(`status ${s.status} of ${s.id} for ${s.recipient_id}`);
        webhookLog.push(`POST: status ${s.status} ${s.id}`);
      }
    }
  }
  res.writeHead(200).end(String(ev.accept() ?? ""));
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    // The raw body, exactly as it came: the signature is over its bytes.
    const raw = Buffer.concat(chunks).toString("utf8");
    onWebhook(req, res, raw).catch((e) => fail("the webhook handler", e));
  });
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const hookURL = `http://127.0.0.1:${server.address().port}/webhook`;
out({ step: "listening", url: hookURL });

// waitFor polls cond until it returns something truthy; a bad signature
// ends the wait at once.
async function waitFor(what, cond, ms = STEP_TIMEOUT) {
  const end = Date.now() + ms;
  for (;;) {
    if (badSignatures > 0) fail(`${badSignatures} webhook POST(s) failed the SDK's signature check`);
    const v = cond();
    if (v) return v;
    if (Date.now() > end) fail(`no ${what} within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// expectGraphError runs an SDK call that must fail: ky's HTTPError with
// Graph's {"error": {code, fbtrace_id, ...}} as its parsed data.
async function expectGraphError(what, call, status, code) {
  try {
    const got = await call();
    fail(`${what}: answered ${JSON.stringify(got)}, want HTTP ${status} with Graph code ${code}`);
  } catch (e) {
    if (e.name !== "HTTPError") fail(`${what}: want an HTTPError`, e);
    const err = e.data?.error;
    if (e.response?.status !== status || err?.code !== code || !err?.fbtrace_id || typeof err?.message !== "string") {
      fail(`${what}: HTTP ${e.response?.status} ${JSON.stringify(e.data)}, want HTTP ${status} with Graph code ${code}`);
    }
    return { status: e.response.status, code: err.code, message: err.message };
  }
}

const sha256hex = (buf) => crypto.createHash("sha256").update(buf).digest("hex");

// ---- Subscribe: Tern verifies the URL with its GET first.

const refused = await expectGraphError(
  "subscribing with a verify token the webhook refuses",
  () => sdk.subscribedApps.createSubscription({ businessAccountID: WABA, override_callback_uri: hookURL, verify_token: "not-it" }).json(),
  400,
  131009,
);
check(refusedVerifications === 1, `the wrong verify token reached the webhook ${refusedVerifications} times, want 1`);
const sub = await sdk.subscribedApps
  .createSubscription({ businessAccountID: WABA, override_callback_uri: hookURL, verify_token: VERIFY_TOKEN })
  .json()
  .catch((e) => fail("subscribing the webhook", e));
check(sub.success === true, `subscribe answered ${JSON.stringify(sub)}`);
check(verifications === 1, `${verifications} verification GETs answered, want 1`);
const subs = await sdk.subscribedApps.listSubscriptions({ businessAccountID: WABA }).json().catch((e) => fail("listing subscriptions", e));
check(subs.data?.[0]?.override_callback_uri === hookURL, `subscriptions: ${JSON.stringify(subs)}`);
out({ step: "subscribed", verifications, refused_verification: refused });

// ---- The customer's "hello", sent before the subscription, waited in the queue.

const hello = await waitFor("customer's hello webhook", () => messages.find((m) => m.type === "text" && m.text?.body === HELLO));
check(hello.from === CUSTOMER && hello.contact?.wa_id === CUSTOMER && hello.contact?.profile?.name === CUSTOMER_NAME,
  `hello from ${hello.from} (contact ${JSON.stringify(hello.contact)}), want ${CUSTOMER}, ${CUSTOMER_NAME}`);
check(/^wamid\./.test(hello.id) && /^\d+$/.test(hello.timestamp), `hello's id ${hello.id} or timestamp ${hello.timestamp}`);
out({ event: "inbound", id: hello.id, from: hello.from, name: hello.contact.profile.name });

// ---- Sends.

const sent = {}; // kind -> wamid
async function send(kind, client, msg) {
  const r = await client.message
    .createMessage({ phoneNumberID: PNID, to: CUSTOMER, ...msg })
    .json()
    .catch((e) => fail(`sending the ${kind}`, e));
  const id = r.messages?.[0]?.id;
  check(r.messaging_product === "whatsapp" && r.contacts?.[0]?.wa_id === CUSTOMER && r.contacts?.[0]?.input === CUSTOMER && /^wamid\./.test(id ?? ""),
    `the ${kind}'s answer: ${JSON.stringify(r)}`);
  sent[kind] = id;
  return id;
}

// A reply to the hello, by the default (unversioned) client.
const textID = await send("text", plain, {
  type: "text",
  text: { body: "Thanks for writing! \u{1F60A}", preview_url: false },
  context: { message_id: hello.id },
});
out({ step: "text", id: textID, request: requests.at(-1) });

// Media: an 8x8 PNG made here, uploaded as a Blob.
const png = makePNG(8, 8);
const up = await sdk.media
  .upload({ phoneNumberID: PNID, file: new Blob([png], { type: "image/png" }), filename: "receipt.png", mimeType: "image/png" })
  .json()
  .catch((e) => fail("uploading the PNG", e));
check(typeof up.id === "string" && up.id !== "", `upload answered ${JSON.stringify(up)}`);
out({ step: "upload", id: up.id, bytes: png.length });

const info = await sdk.media.getURL({ mediaID: up.id, phoneNumberID: PNID }).json().catch((e) => fail("getURL", e));
check(info.id === up.id && info.messaging_product === "whatsapp" && info.mime_type === "image/png" &&
  /^[0-9a-f]{64}$/.test(info.sha256 ?? "") && Number.isInteger(info.file_size) && info.file_size > 0 && /^https?:\/\//.test(info.url ?? ""),
  `getURL answered ${JSON.stringify(info)}`);
// Asked without the version in the path, the same object.
const infoPlain = await plain.media.getURL({ mediaID: up.id }).json().catch((e) => fail("getURL by the default client", e));
check(infoPlain.id === info.id && infoPlain.sha256 === info.sha256 && infoPlain.file_size === info.file_size && /^https?:\/\//.test(infoPlain.url ?? ""),
  `getURL without the version answered ${JSON.stringify(infoPlain)}; with it ${JSON.stringify(info)}`);
out({ step: "media_url", id: info.id, url: info.url, url_unversioned: infoPlain.url, sha256: info.sha256, mime_type: info.mime_type, file_size: info.file_size });

const dl = await sdk.media.download({ mediaURL: info.url, request: { headers: auth, retry: 0 } }).catch((e) => fail("downloading the media", e));
const bytes = Buffer.from(await dl.arrayBuffer());
check(sha256hex(bytes) === info.sha256 && bytes.length === info.file_size,
  `download: ${bytes.length} bytes, sha256 ${sha256hex(bytes)}; getURL said ${info.file_size} bytes, ${info.sha256}`);
check(bytes.subarray(0, 8).equals(png.subarray(0, 8)) && bytes.readUInt32BE(16) === 8 && bytes.readUInt32BE(20) === 8,
  "the download is not the 8x8 PNG uploaded");
check((dl.headers.get("content-type") ?? "").startsWith("image/png"), `download's Content-Type ${dl.headers.get("content-type")}`);
const anon = await expectGraphError("downloading without the bearer token",
  () => sdk.media.download({ mediaURL: info.url, request: { retry: 0 } }), 401, 190);
out({ step: "download", sha256: sha256hex(bytes), bytes: bytes.length, without_token: anon });

const imageID = await send("image", sdk, { type: "image", image: { id: up.id, caption: "Your receipt" } });
out({ step: "image", id: imageID, media_id: up.id });

// A second upload, deleted before it is sent: gone for the API.
const extra = await sdk.media
  .upload({ phoneNumberID: PNID, file: new Blob([png], { type: "image/png" }), filename: "extra.png", mimeType: "image/png" })
  .json()
  .catch((e) => fail("uploading the second PNG", e));
const del = await sdk.media.delete({ mediaID: extra.id, phoneNumberID: PNID }).json().catch((e) => fail("deleting media", e));
check(del.success === true, `delete answered ${JSON.stringify(del)}`);
const gone = await expectGraphError("getURL of deleted media", () => sdk.media.getURL({ mediaID: extra.id, phoneNumberID: PNID }).json(), 400, 100);
out({ step: "media_delete", id: extra.id, after: gone });

// A template, registered and sent.
const tpl = await sdk.template
  .create(WABA, {
    name: "order_update",
    category: "UTILITY",
    language: "en_US",
    parameter_format: "POSITIONAL",
    components: [{ type: "BODY", text: "Your order {{1}} shipped", example: { body_text: [["42"]] } }],
  })
  .json()
  .catch((e) => fail("creating the template", e));
check(typeof tpl.id === "string" && tpl.id !== "" && tpl.status === "APPROVED" && tpl.category === "UTILITY", `template create answered ${JSON.stringify(tpl)}`);
out({ step: "template_create", id: tpl.id, status: tpl.status });

const templateID = await send("template", sdk, {
  type: "template",
  template: { name: "order_update", language: { code: "en_US" }, components: [{ type: "body", parameters: [{ type: "text", text: "42" }] }] },
});
out({ step: "template", id: templateID });

const reactionID = await send("reaction", sdk, { type: "reaction", reaction: { message_id: hello.id, emoji: THUMBS_UP } });
out({ step: "reaction", id: reactionID });

const read = await prefixed.message
  .createStatus({ phoneNumberID: PNID, message_id: hello.id, status: "read", typing_indicator: { type: "text" } })
  .json()
  .catch((e) => fail("marking the hello read", e));
check(read.success === true, `mark-read answered ${JSON.stringify(read)}`);
out({ step: "read", request: requests.at(-1) });

// ---- Refusals, as the SDK surfaces them.

const noTemplate = await expectGraphError("a template that does not exist",
  () => sdk.message.createMessage({ phoneNumberID: PNID, to: CUSTOMER, type: "template", template: { name: "no_such_template", language: { code: "en_US" } } }).json(),
  404, 132001);
const badToken = new Client({ baseUrl: TERN, graphVersion: `${GRAPH_VERSION}/`, request: { headers: { Authorization: "Bearer tbt_nope.nope" }, retry: 0 } });
const unauthorized = await expectGraphError("a bad access token",
  () => badToken.message.createMessage({ phoneNumberID: PNID, to: CUSTOMER, type: "text", text: { body: "x" } }).json(), 401, 190);
out({ step: "errors", template_not_found: noTemplate, bad_token: unauthorized });

// ---- Statuses: sent for everything sent; delivered once the customer's
// phone took it; read for the text, which the customer reads.

const has = (id, st) => (statuses.get(id) ?? []).includes(st);
const want = [];
for (const kind of ["text", "image", "template", "reaction"]) want.push([kind, "sent"]);
for (const kind of ["text", "image", "template"]) want.push([kind, "delivered"]);
want.push(["text", "read"]);
for (const [kind, st] of want) {
  await waitFor(`"${st}" status of the ${kind} (${sent[kind]})`, () => has(sent[kind], st));
}
for (const [kind, id] of Object.entries(sent)) {
  const seen = statuses.get(id);
  check(seen[0] === "sent", `the ${kind}'s statuses start with ${seen[0]}, not "sent": ${seen}`);
}
out({ step: "statuses", statuses: Object.fromEntries(Object.entries(sent).map(([k, id]) => [k, statuses.get(id)])) });

check(badSignatures === 0, `${badSignatures} bad signatures`);
check(faults.length === 0, `webhook payloads not in the Cloud API's shape: ${faults.join("; ")}`);
const forms = { plain: requests.filter((r) => r.startsWith("plain ")), versioned: requests.filter((r) => r.startsWith("versioned ")), prefix: requests.filter((r) => r.startsWith("prefix ")) };
check(forms.plain.length > 0 && forms.plain.every((r) => !r.includes(" /v")), `the default client's requests: ${forms.plain}`);
check(forms.versioned.every((r) => r.includes(` /${GRAPH_VERSION}/`)), `the versioned client's requests: ${forms.versioned}`);
check(forms.prefix.every((r) => r.includes(` /${GRAPH_VERSION}/`)), `the prefixed client's requests: ${forms.prefix}`);

clearTimeout(overall);
out({
  done: true,
  node: process.version,
  sent,
  hello: hello.id,
  media_id: up.id,
  media_sha256: info.sha256,
  posts,
  bad_signatures: badSignatures,
  verifications,
  requests,
});
// Now, without waiting for the keep-alive connections (Tern's to the
// webhook server, the SDK's to Tern) to time out.
process.exit(0);

// makePNG is a w x h RGB gradient as a PNG file.
function makePNG(w, h) {
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + 3 * w); // filter byte 0, then RGB
    for (let x = 0; x < w; x++) row.set([(x * 255) / (w - 1), (y * 255) / (h - 1), 128], 1 + 3 * x);
    rows.push(row);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB, deflate, no filter method, no interlace
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, "latin1");
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}
