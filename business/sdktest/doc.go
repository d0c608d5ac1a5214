// Package sdktest drives Tern's business API (docs/protocol.md, "Business
// API") with a real WhatsApp Cloud API SDK from npm, @great-detail/whatsapp,
// pinned in testdata/package.json and testdata/package-lock.json, the way a
// company's system would use it: the SDK's base URL pointed at a local
// Tern node, nothing else changed.
//
// Tern's own tests (server/cloudapi_test.go, server/webhooks_test.go) check
// the Cloud API's shape as Tern's authors read it; this one checks it as
// an SDK written against Meta's API reads it: the URLs it builds (with the
// Graph version in the path and, by the SDK's default options, without
// it), its multipart uploads, its JSON bodies, the errors it raises
// (Graph's {"error": {code, ...}} in ky's HTTPError), and its webhook
// helpers (the verification GET's challenge, the X-Hub-Signature-256
// check over the raw body).
//
// TestCloudAPISDK starts a node, makes a business without a webhook, and
// has a customer (the Go client SDK) write to it. Then testdata/sdk.mjs,
// under Node.js, runs a webhook server that answers with the SDK's
// register() and eventNotification(), subscribes it through the API,
// receives the customer's message, and with the SDK replies with a text,
// uploads, describes, downloads and sends an image by id (and deletes a
// second upload), registers and sends a template, reacts, marks the
// message read with a typing indicator, checks that refusals (a webhook
// that fails the verification, a download without the token, deleted
// media, an unknown template, a bad token) reach it as Graph's errors, and
// waits for the sent, delivered and read statuses. The Go side checks
// what the customer got: the reply, the image (the same bytes), the
// template's text, the reaction, the typing indicator and the read
// receipt.
//
// The test needs node and npm on PATH (.ci/run installs Debian's when
// they are missing) and, once, the npm registry: the SDK is installed by
// `npm ci` into the user's cache directory (os.UserCacheDir()/tern-test),
// keyed by the lock file's hash, and reused after. Without node or npm it
// skips saying so, and fails instead under TERN_TEST_REQUIRE=1, as in CI.
package sdktest
