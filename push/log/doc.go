// Package log is the default push adapter: it records each wake-up in the
// log instead of sending it, for single-node development.
package log
