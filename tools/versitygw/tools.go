//go:build tools

// Package tools pins versitygw, the Versity S3 Gateway, for the tests of
// media/s3: with its posix backend it is an S3-compatible server on a
// plain directory, so those tests need no S3 service. This is a module of
// its own so that the gateway's dependencies (about 85 modules: the AWS
// and Azure SDKs, fiber, LDAP, Vault, Kafka, NATS clients) stay out of
// Tern's go.mod.
//
// Nothing here is built by default (the tools build tag keeps this file
// out); the file only keeps the requirement in go.mod. The server is
// upstream's own command, built as it is:
//
//	cd tools/versitygw
//	GOWORK=off go build -mod=readonly -o versitygw github.com/versity/versitygw/cmd/versitygw
//	./versitygw -q --access KEY --secret SECRET --port 127.0.0.1:7070 posix /some/dir
//
// media/s3/s3test does exactly that, once per version of this module's
// go.mod and go.sum, and caches the binary under the user cache dir.
package tools

import _ "github.com/versity/versitygw/cmd/versitygw"
