// Package safehttp makes HTTP clients for URLs that users give the server
// (Web Push endpoints now; webhook and media links of the business API
// later): their connections reach only public addresses, never loopback,
// private, link-local or other special-purpose ones, whatever a name
// resolves to, and they follow no redirects. The check is made on the
// address actually dialled, so a DNS answer that changes between a check
// and the connection (DNS rebinding) cannot get around it.
package safehttp
