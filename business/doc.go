// Package business holds the rules of Tern's business API (the WhatsApp
// Cloud API's shape; docs/architecture.md, "Business API"): how a
// business's ids and API tokens are made and checked. The wire format is
// business/cloudapi; the records are store.Businesses; the HTTP side is
// in package server.
package business
