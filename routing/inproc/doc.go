// Package inproc is the single-node router: a map from device id to the
// handler of its socket. Publish calls the handler synchronously, which is
// safe because handlers never block.
package inproc
