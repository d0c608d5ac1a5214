// Package push wakes devices that no node holds, so they connect and drain
// their inbox. A push carries no message content: the inbox is the truth.
//
// Adapters: push/log (the default, writes a log line) and, later, push/fcm.
package push
