package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tern-im/tern/routing"
)

// ErrBlocked is returned by Publish while the broker refuses publishes
// (a memory or disk alarm): waiting would stall the publisher for as long
// as the alarm lasts.
var ErrBlocked = errors.New("rabbitmq: broker blocks publishing")

// link is one connection to the broker with everything that lives and dies
// with it: the node's queue, its bindings, the publish channel and the
// publishes awaiting a confirm. A failed link is never repaired; the
// supervisor builds a new one.
type link struct {
	conn  *amqp.Connection
	pub   *amqp.Channel // confirm mode, publishes only
	ctl   *amqp.Channel // declarations, bindings, the consumer
	queue string
	sem   chan struct{}
	log   *slog.Logger

	// pubMu makes reading the next delivery tag and publishing one step,
	// since the tag is what identifies the publish in the broker's answer.
	pubMu sync.Mutex

	pendMu  sync.Mutex
	pending map[uint64]*pending
	drained bool // no publish can be settled any more

	blocked atomic.Bool
	// blockChanged is signalled (without blocking) when blocked changes.
	blockChanged chan struct{}

	down     chan struct{} // closed once the link has failed or is closing
	downOnce sync.Once
	err      error // why it failed; set before down is closed

	wg sync.WaitGroup
}

// pending is one publish awaiting the broker's answer. Whoever removes it
// from link.pending settles it, once.
type pending struct {
	returned bool // the broker returned it: no queue was bound
	err      error
	done     chan struct{}
	sem      chan struct{}
}

func (p *pending) settle(err error) {
	p.err = err
	close(p.done)
	<-p.sem
}

// fail marks the link failed; the supervisor then replaces it.
func (l *link) fail(cause error) {
	l.downOnce.Do(func() {
		l.err = cause
		close(l.down)
	})
}

// cause reports why the link failed; only valid once down is closed.
func (l *link) cause() error { return l.err }

// dial opens a connection named after the node, so that an operator can
// tell the nodes apart in the broker. ctx aborts the dial and handshake.
func (r *Router) dial(ctx context.Context) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("tern.node." + r.cfg.NodeID)
	var abort func() bool
	aborted := make(chan struct{})
	conn, err := amqp.DialConfig(r.cfg.URL, amqp.Config{
		Properties: props,
		Heartbeat:  r.cfg.Heartbeat,
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The handshake that follows takes no context: a deadline
			// bounds it, and ctx ending moves the deadline to now.
			deadline := time.Now().Add(dialTimeout)
			if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
				deadline = dl
			}
			if err := c.SetDeadline(deadline); err != nil {
				_ = c.Close()
				return nil, err
			}
			abort = context.AfterFunc(ctx, func() {
				defer close(aborted)
				_ = c.SetDeadline(time.Unix(1, 0))
			})
			return c, nil
		},
	})
	if abort != nil && !abort() {
		// ctx ended during the handshake: the socket may carry a past
		// deadline even if the handshake won the race.
		<-aborted
		if err == nil {
			_ = conn.CloseDeadline(time.Now())
		}
		return nil, ctx.Err()
	}
	return conn, err
}

// establish connects, declares the exchange and a fresh queue for this
// node, starts consuming, binds every attached device and makes the link
// the router's current one. ctx aborts it.
func (r *Router) establish(ctx context.Context) (*link, error) {
	conn, err := r.dial(ctx)
	if err != nil {
		return nil, err
	}
	// The calls below take no context; closing the connection ends them.
	// Wait for that closing, so that nothing outlives Close.
	aborted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(aborted)
		_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
	})
	defer func() {
		if !stop() {
			<-aborted
		}
	}()

	l, err := r.open(conn)
	if err != nil {
		_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
		return nil, err
	}
	if err := r.rebind(ctx, l); err != nil {
		l.close(false)
		return nil, err
	}
	return l, nil
}

// open sets up the channels, the queue and the link's goroutines.
func (r *Router) open(conn *amqp.Connection) (*link, error) {
	ctl, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ctl.ExchangeDeclare(r.cfg.Exchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("declare exchange %s: %w", r.cfg.Exchange, err)
	}
	// A new name each time: the broker may not yet have noticed that the
	// previous connection died, and would refuse an exclusive queue of the
	// same name as still owned by it.
	queue := "tern.node." + r.cfg.NodeID + "." + randomID()
	// Classic, whatever the vhost's default queue type: a quorum or stream
	// queue cannot be exclusive, and this queue must die with the node.
	if _, err := ctl.QueueDeclare(queue, false, true, true, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		return nil, fmt.Errorf("declare queue %s: %w", queue, err)
	}
	if err := ctl.QueueBind(queue, broadcastKey, r.cfg.Exchange, false, nil); err != nil {
		return nil, fmt.Errorf("bind %s for broadcasts: %w", queue, err)
	}
	if err := ctl.Qos(prefetch, 0, false); err != nil {
		return nil, fmt.Errorf("set prefetch: %w", err)
	}
	deliveries, err := ctl.Consume(queue, "", false, true, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", queue, err)
	}
	pub, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := pub.Confirm(false); err != nil {
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	l := &link{
		blockChanged: make(chan struct{}, 1),
		conn:         conn,
		pub:          pub,
		ctl:          ctl,
		queue:        queue,
		sem:          r.sem,
		log:          r.log,
		pending:      make(map[uint64]*pending),
		down:         make(chan struct{}),
	}
	// Unbuffered, and read by one goroutine: a return is fully recorded
	// before the ack that follows it can be received (see settleLoop).
	returns := pub.NotifyReturn(make(chan amqp.Return))
	confirms := pub.NotifyPublish(make(chan amqp.Confirmation))
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	pubClosed := pub.NotifyClose(make(chan *amqp.Error, 1))
	ctlClosed := ctl.NotifyClose(make(chan *amqp.Error, 1))
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 1))
	l.wg.Go(func() { l.watch(connClosed, pubClosed, ctlClosed, blocked) })
	l.wg.Go(func() { l.settleLoop(returns, confirms) })
	l.wg.Go(func() { r.consume(l, deliveries) })
	return l, nil
}

// rebind binds every attached device to the new link's queue and makes the
// link current, holding topo so that no attach or detach interleaves.
func (r *Router) rebind(ctx context.Context, l *link) error {
	select {
	case r.topo <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.topo }()

	r.mu.RLock()
	ids := make([]string, 0, len(r.devices))
	for id, d := range r.devices {
		if d.cur != nil {
			ids = append(ids, id)
		}
	}
	r.mu.RUnlock()
	for i, id := range ids {
		// Only the last bind waits for its answer: the broker handles a
		// channel's methods in order, so that answer covers all before it,
		// and a failed bind closes the channel, failing the last one.
		noWait := i < len(ids)-1
		if err := l.ctl.QueueBind(l.queue, id, r.cfg.Exchange, noWait, nil); err != nil {
			return fmt.Errorf("rebind %d devices: %w", len(ids), err)
		}
	}
	r.mu.Lock()
	for _, id := range ids {
		if d := r.devices[id]; d != nil {
			d.bound = l
		}
	}
	r.link = l
	r.mu.Unlock()
	if len(ids) > 0 {
		r.log.Info("rebound devices", "devices", len(ids), "queue", l.queue)
	}
	return nil
}

// close ends the link and waits for its goroutines. On Close (graceful)
// it deletes the queue first, so that the node's devices are unroutable
// as soon as Close returns rather than when the broker reaps the
// connection.
func (l *link) close(graceful bool) {
	l.fail(nil)
	if graceful {
		deleted := make(chan struct{})
		go func() {
			defer close(deleted)
			if _, err := l.ctl.QueueDelete(l.queue, false, false, false); err != nil {
				l.log.Debug("delete queue on close", "queue", l.queue, "err", err)
			}
		}()
		t := time.NewTimer(closeTimeout)
		select {
		case <-deleted:
		case <-t.C:
		}
		t.Stop()
		_ = l.conn.CloseDeadline(time.Now().Add(closeTimeout))
		<-deleted
	} else {
		_ = l.conn.CloseDeadline(time.Now().Add(closeTimeout))
	}
	l.wg.Wait()
}

// watch fails the link when the connection or a channel closes, and tracks
// the broker's flow control. It returns once the connection is closed,
// which every path to a failed link ends with.
func (l *link) watch(conn, pub, ctl <-chan *amqp.Error, blocked <-chan amqp.Blocking) {
	for {
		select {
		case err := <-conn:
			l.fail(amqpErr("connection closed", err))
			return
		case err := <-pub:
			pub = nil
			l.fail(amqpErr("publish channel closed", err))
		case err := <-ctl:
			ctl = nil
			l.fail(amqpErr("control channel closed", err))
		case b, ok := <-blocked:
			if !ok {
				blocked = nil
				continue
			}
			l.blocked.Store(b.Active)
			select {
			case l.blockChanged <- struct{}{}:
			default:
			}
			if b.Active {
				l.log.Warn("broker blocks publishing", "reason", b.Reason)
			} else {
				l.log.Info("broker unblocked publishing")
			}
		}
	}
}

// amqpErr turns a close notification into an error; a nil one means the
// closing was ours.
func amqpErr(what string, err *amqp.Error) error {
	if err == nil {
		return errors.New(what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// settleLoop matches the broker's answers to publishes. AMQP sends a
// basic.return before the basic.ack of the same message, and the library
// hands both over from its one reader goroutine through unbuffered
// channels; this goroutine records a return before it can receive the
// ack, so the ack always sees it.
func (l *link) settleLoop(returns <-chan amqp.Return, confirms <-chan amqp.Confirmation) {
	defer l.drain()
	for returns != nil || confirms != nil {
		select {
		case ret, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			tag, err := strconv.ParseUint(ret.MessageId, 10, 64)
			if err != nil {
				continue
			}
			l.pendMu.Lock()
			if p := l.pending[tag]; p != nil {
				p.returned = true
			}
			l.pendMu.Unlock()
		case c, ok := <-confirms:
			if !ok {
				confirms = nil
				continue
			}
			p := l.take(c.DeliveryTag)
			switch {
			case p == nil:
			case !c.Ack:
				p.settle(ErrNacked)
			case p.returned:
				p.settle(routing.ErrNoRoute)
			default:
				p.settle(nil)
			}
		}
	}
}

func (l *link) take(tag uint64) *pending {
	l.pendMu.Lock()
	defer l.pendMu.Unlock()
	p := l.pending[tag]
	delete(l.pending, tag)
	return p
}

// drain settles every publish left when the channel is gone: the broker
// will never answer them.
func (l *link) drain() {
	l.pendMu.Lock()
	l.drained = true
	left := l.pending
	l.pending = nil
	l.pendMu.Unlock()
	for _, p := range left {
		p.settle(fmt.Errorf("%w: the link failed before the broker confirmed", ErrNotConnected))
	}
}

// publish sends one message and returns the publish to wait on. The
// caller holds a sem token, which from here on belongs to the publish.
func (l *link) publish(exchange, key string, body []byte) (*pending, error) {
	p := &pending{done: make(chan struct{}), sem: l.sem}
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	tag := l.pub.GetNextPublishSeqNo()
	l.pendMu.Lock()
	if l.drained {
		l.pendMu.Unlock()
		<-l.sem
		return nil, ErrNotConnected
	}
	l.pending[tag] = p
	l.pendMu.Unlock()
	err := l.pub.Publish(exchange, key, true, false, amqp.Publishing{
		MessageId:    strconv.FormatUint(tag, 10),
		DeliveryMode: amqp.Transient,
		Body:         body,
	})
	if err != nil {
		if l.take(tag) == p {
			<-l.sem
		}
		l.fail(fmt.Errorf("publish: %w", err))
		return nil, fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	return p, nil
}

// consume hands the queue's envelopes to the handlers, acknowledging them
// in batches. It fails the link if the broker cancels the consumer (the
// queue was deleted under us): a node that cannot receive must not stay
// bound.
func (r *Router) consume(l *link, deliveries <-chan amqp.Delivery) {
	var unacked int
	var last uint64
	ack := func() {
		if unacked > 0 {
			_ = l.ctl.Ack(last, true)
			unacked = 0
		}
	}
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-deliveries:
		default:
			ack()
			d, ok = <-deliveries
		}
		if !ok {
			// A closed channel is watch's to report, with its cause.
			if !l.ctl.IsClosed() {
				l.fail(errors.New("broker cancelled the consumer"))
			}
			return
		}
		if env, err := decode(d.Body); err != nil {
			r.log.Warn("dropped malformed envelope", "device", d.RoutingKey, "bytes", len(d.Body))
		} else {
			r.deliver(d.RoutingKey, env)
		}
		unacked++
		last = d.DeliveryTag
		if unacked >= ackBatch {
			ack()
		}
	}
}
