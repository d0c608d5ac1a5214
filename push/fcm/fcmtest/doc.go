// Package fcmtest is a local stand-in for Firebase Cloud Messaging (the
// HTTP v1 API and its OAuth 2 token endpoint), for tests of code that
// sends through push/fcm. It is a test helper, like net/http/httptest:
// import it only from _test.go files.
//
// Start serves on 127.0.0.1 and writes a service-account key file whose
// token_uri points at the server, so that
//
//	srv := fcmtest.Start(t)
//	n, err := fcm.New(ctx, fcm.Config{CredentialsFile: srv.CredentialsFile(), Endpoint: srv.Endpoint()})
//
// sends everything to it. The server checks what a real one would: the
// token request's JWT assertion must be signed by the key in the file,
// for this token endpoint, with the firebase scope, and every send must
// carry an access token it issued. Any other mistake (an unexpected
// request, a body that is not JSON) fails the test through t.Errorf.
//
// # Answers
//
// What a send gets depends on its registration token:
//
//	gone-*    404 NOT_FOUND, UNREGISTERED
//	badtoken  400 INVALID_ARGUMENT blaming message.token
//	badmsg    400 INVALID_ARGUMENT about message.data
//	mismatch  403 PERMISSION_DENIED, SENDER_ID_MISMATCH
//	quota     429 RESOURCE_EXHAUSTED, QUOTA_EXCEEDED, Retry-After: 30
//	flaky     503 UNAVAILABLE on the token's first two sends, then 200
//	down      503 UNAVAILABLE always
//	others    200
//
// Fail and FailNext override that for any token, for a number of sends or
// for good; an override is used up before the token's own behaviour
// applies. Note that the Firebase SDK itself retries a 503 up to four
// times (after 0, 1, 2 and 4 seconds), and Attempts counts each of them.
//
// # Recording
//
// Every messages:send request that carries a decodable body is recorded
// as a Message, with the status it was answered, whatever that was; Sent
// gives them all, Delivered those answered 200. WaitSent, WaitDelivered
// and WaitFor wait for them with a deadline.
package fcmtest
