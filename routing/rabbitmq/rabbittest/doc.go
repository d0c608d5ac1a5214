// Package rabbittest runs a private RabbitMQ node for tests that stop,
// restart or alarm the broker: things they must not do to the shared broker
// that other tests (and other packages' tests, running at the same time)
// use.
//
// The node runs the installed RabbitMQ (the scripts under
// /usr/lib/rabbitmq/bin, or RABBITMQ_HOME/sbin) as the current user, with
// everything of its own: a name, an AMQP port and a distribution port the
// kernel picked, a data and log directory and an Erlang cookie under the
// test's temporary directory, no plugins, and the system's rabbitmq.conf and
// rabbitmq-env.conf ignored. It shares only epmd, which serves any number
// of nodes. Starting one takes a few seconds.
package rabbittest
