// Package web serves Tern's browser apps, the chat client at / and (later)
// the admin dashboard at /admin, from files embedded in the binary: a node
// needs no Node.js, no build step and no network to serve them.
//
// The apps are plain ES modules written for this project, with no library
// and no bundler: a browser loads them as they are in static/, so what runs
// is what is reviewed, and there is no toolchain to keep up. See
// docs/architecture.md ("Web client") for why.
//
// Every answer carries a strict Content-Security-Policy (scripts and styles
// only from this origin, no inline code), and files are sent gzipped when
// the browser takes it, with an ETag so a reload costs a 304 per file.
package web
