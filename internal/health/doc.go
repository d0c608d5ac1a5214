// Package health keeps how an outside service a node depends on (an SMS
// gateway, a push service, a mail server) has been answering lately, for
// the admin dashboard's overview: whether the last attempt worked, when
// the last success and failure were, and what the failure said. Nodes
// keep one Outcomes per service; nothing here talks to the service.
package health
