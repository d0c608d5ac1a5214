package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/wire"
)

const (
	chatDefaultServer = "http://127.0.0.1:8080"
	// chatRESTTimeout bounds one REST call made for a command, so a server
	// that stopped answering does not freeze the prompt for good.
	chatRESTTimeout = 15 * time.Second
	// chatMaxQueued is how many typed messages may wait for their sent
	// answer; more wait in the input backlog, so a long outage cannot grow
	// memory without bound and the SDK's event buffer keeps draining.
	chatMaxQueued = 64
	// chatPoll is how often the loop looks at the connection state and the
	// session: the SDK has no callback for either.
	chatPoll           = 250 * time.Millisecond
	chatMaxBacklog     = 256
	chatHistoryDefault = 20
	chatHistoryMax     = 200
)

func chatUsage() string {
	return `Usage: tern chat --phone +E164 [flags]

A line-oriented terminal client for a running Tern node, built on the Go SDK.
The first start signs the phone in with a code (with "tern serve" defaults the
code is in the server's log: msg=sms ... "Your Tern code is 123456"); the
device session is kept in --session so later starts connect at once.

Once connected, type /help for the commands; any other line is a message to
the current peer, chosen with /to +E164.

Flags (each with its environment variable):
`
}

// chat is "tern chat": sign in (or reuse the saved session), connect, and
// run the interactive loop on stdin/stdout; diagnostics go to stderr.
func chat(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var server, phone, name, session string
	flags := newFlagSet("tern chat", "TERN_CHAT_")
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), chatUsage())
		flags.PrintDefaults()
	}
	flags.String(&server, "server", chatDefaultServer, "base URL of the Tern node")
	flags.String(&phone, "phone", "", "your phone number in E.164 form, e.g. +14155550101")
	flags.String(&name, "name", chatDeviceName(), "device name shown in your device list")
	flags.String(&session, "session", "", "file keeping the signed-in session (default $XDG_CONFIG_HOME/tern/chat-<phone digits>.json, or ~/.config/tern/...)")
	if err := flags.parse(args); err != nil {
		return err
	}
	err := chatMain(ctx, chatConfig{server: server, phone: phone, device: name, session: session},
		stdin, stdout, stderr)
	if err != nil && ctx.Err() != nil {
		return nil // Ctrl-C while signing in or connecting is a normal way out
	}
	return err
}

type chatConfig struct {
	server, phone, device, session string
}

func chatDeviceName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "terminal"
}

func chatMain(ctx context.Context, cfg chatConfig, stdin io.Reader, stdout, stderr io.Writer) error {
	path := cfg.session
	var saved chatSavedSession
	if path != "" {
		var err error
		if saved, err = loadChatSession(path); err != nil {
			return err
		}
		if cfg.phone == "" {
			cfg.phone = saved.Phone
		}
	}
	if cfg.phone == "" {
		return errors.New("chat: --phone is required (E.164, like +14155550101)")
	}
	if path == "" {
		p, err := chatSessionPath(cfg.phone)
		if err != nil {
			return err
		}
		path = p
		if saved, err = loadChatSession(path); err != nil {
			return err
		}
	}
	server := strings.TrimRight(cfg.server, "/")
	c := client.New(server, client.Options{})
	defer func() { _ = c.Close() }()
	save := func(s wire.Session) {
		err := saveChatSession(path, chatSavedSession{Server: server, Phone: cfg.phone, Session: s})
		if err != nil {
			fmt.Fprintf(stderr, "warning: %v\n", err)
		}
	}

	// One buffered reader serves the code prompt and then the loop, so a
	// line typed early is not lost in a buffer nobody reads any more.
	in := bufio.NewReader(stdin)
	usedSaved := false
	switch {
	case saved.RefreshToken == "":
	case saved.Server != server || saved.Phone != cfg.phone:
		fmt.Fprintf(stderr, "%s holds a session of %s on %s; signing in again\n", path, saved.Phone, saved.Server)
	default:
		c.SetSession(saved.Session)
		usedSaved = true
		fmt.Fprintf(stderr, "using the session saved in %s\n", path)
	}
	if c.Session().RefreshToken == "" {
		if err := chatSignIn(ctx, c, cfg, in, stdout, stderr); err != nil {
			return err
		}
		save(c.Session())
	}

	fmt.Fprintf(stderr, "connecting to %s…\n", server)
	err := chatConnect(ctx, c)
	if isChatRefused(err) && usedSaved {
		// The saved device is gone: signed out elsewhere, or the server's
		// data was wiped. A newcomer should get a code prompt, not a dead end.
		fmt.Fprintln(stderr, "the saved session was refused (device signed out, or the server lost its data); signing in again")
		c.SetSession(wire.Session{})
		if err := chatSignIn(ctx, c, cfg, in, stdout, stderr); err != nil {
			return err
		}
		save(c.Session())
		err = chatConnect(ctx, c)
	}
	if err != nil {
		return fmt.Errorf("chat: connect to %s (is \"tern serve\" running there?): %w", server, err)
	}
	// Connect may have refreshed the tokens; the old refresh token is dead.
	save(c.Session())
	fmt.Fprintf(stderr, "connected as %s (%s)\n", cfg.phone, c.Session().UserID)

	l := newChatLoop(c, stdout, stderr)
	l.onSession = save
	runErr := l.run(ctx, in)
	// Close flushes the acks and says goodbye with a normal closure, so the
	// server does not replay what was already shown.
	_ = c.Close()
	save(c.Session())
	return runErr
}

func chatConnect(ctx context.Context, c *client.Client) error {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return c.Connect(cctx)
}

// isChatRefused tells a refused device (401) from a server out of reach.
func isChatRefused(err error) bool {
	var werr *wire.Error
	return errors.As(err, &werr) && werr.Code == wire.CodeUnauthorized
}

func chatSignIn(ctx context.Context, c *client.Client, cfg chatConfig, in *bufio.Reader, stdout, stderr io.Writer) error {
	_, err := c.RequestCode(ctx, cfg.phone)
	var werr *wire.Error
	switch {
	case err == nil:
		fmt.Fprintf(stderr, "a code is on its way to %s (with \"tern serve\" defaults it is in the server log: msg=sms to=%s)\n",
			cfg.phone, cfg.phone)
	case errors.As(err, &werr) && werr.Code == wire.CodeRateLimited:
		// The last code sent is still good while the wait lasts, so a quick
		// restart can go on with it.
		fmt.Fprintf(stderr, "no new code yet (%s); the last code sent to %s still works\n", werr.Message, cfg.phone)
	default:
		return fmt.Errorf("chat: request a code for %s: %w", cfg.phone, err)
	}
	for tries := 1; ; tries++ {
		fmt.Fprint(stdout, "Code (from the server log or SMS): ")
		line, err := chatReadLine(ctx, in)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("chat: no code given")
			}
			return fmt.Errorf("chat: read the code: %w", err)
		}
		code := strings.TrimSpace(line)
		if code == "" {
			continue
		}
		_, err = c.Verify(ctx, cfg.phone, code, cfg.device, "desktop")
		if err == nil {
			return nil
		}
		// A code allows 5 tries; a typo should not need a restart.
		if errors.As(err, &werr) && werr.Code == wire.CodeInvalidCode && tries < 5 {
			fmt.Fprintln(stderr, "that code is wrong; try again")
			continue
		}
		return fmt.Errorf("chat: verify the code: %w", err)
	}
}

// chatReadLine reads one line, giving up when ctx ends: a read from a
// terminal cannot be interrupted, so it runs aside and is abandoned.
func chatReadLine(ctx context.Context, in *bufio.Reader) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := in.ReadString('\n')
		if err != nil && s != "" && errors.Is(err, io.EOF) {
			err = nil // a last line without a newline still counts
		}
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		return strings.TrimRight(r.line, "\r\n"), r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// chatSavedSession is the --session file: the device session plus what it
// belongs to, so a file is not used against another server or phone.
type chatSavedSession struct {
	Server string `json:"server"`
	Phone  string `json:"phone"`
	wire.Session
}

// chatSessionPath is $XDG_CONFIG_HOME/tern/chat-<digits>.json, falling back
// to ~/.config as the XDG spec says, on every OS alike so docs hold.
func chatSessionPath(phone string) (string, error) {
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, phone)
	if digits == "" {
		return "", fmt.Errorf("chat: %q has no digits; a phone looks like +14155550101", phone)
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("chat: no place for the session file, pass --session: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "tern", "chat-"+digits+".json"), nil
}

func loadChatSession(path string) (chatSavedSession, error) {
	var s chatSavedSession
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("chat: read session: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("chat: session file %s is damaged (delete it to sign in again): %w", path, err)
	}
	return s, nil
}

// saveChatSession writes the file whole or not at all: a torn write would
// lose the refresh token, and with it the device.
func saveChatSession(path string, s chatSavedSession) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("chat: encode session: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("chat: save session: %w", err)
	}
	f, err := os.CreateTemp(dir, ".chat-session-*") // mode 0600: it holds tokens
	if err != nil {
		return fmt.Errorf("chat: save session: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("chat: save session: %w", err)
	}
	return nil
}

// runChat is the interactive loop on an already connected client: commands
// and messages come from in, everything it prints goes to out. It returns
// nil on /quit, at the end of in (after the typed messages are answered),
// and when ctx ends; it does not close c.
func runChat(ctx context.Context, in io.Reader, out io.Writer, c *client.Client) error {
	return newChatLoop(c, out, out).run(ctx, in)
}

type chatSendReq struct {
	id, to, text string
}

type chatSendResult struct {
	req  chatSendReq
	sent wire.Sent
	err  error
}

type chatInfo struct {
	peer  string // user id, or the group id for a group
	group bool
	title string
	shown int64 // highest seq printed, what /read marks
}

// chatLoop owns everything it prints and remembers; only its run goroutine
// touches it, and the sender goroutine talks to it through channels.
type chatLoop struct {
	c         *client.Client
	out, diag io.Writer
	onSession func(wire.Session)

	me       string // user id
	peer     string // current addressee: user or group id
	chats    map[string]*chatInfo
	peerChat map[string]string // peer id → chat id
	names    map[string]string // user id → what to call them
	phones   map[string]string // user id → phone, from lookups
	listed   []string          // peers in /chats order, for /to N
	ownSeq   map[string]int64  // own msg id → seq, to tag ticks
	ticks    map[string]int    // msg id + "|" + reader → tick level shown
	hinted   map[string]bool   // chats whose "/to to reply" hint was shown

	pending int                // sends waiting for their answer
	early   []wire.ServerFrame // receipts that may belong to a pending send
	backlog []string
	quit    bool
	// quitWait is when /quit started waiting for sends; a note follows if
	// that takes long enough for a person to wonder.
	quitWait  time.Time
	waitNoted bool

	lastSess   wire.Session
	connected  bool
	reconnects int64
}

func newChatLoop(c *client.Client, out, diag io.Writer) *chatLoop {
	return &chatLoop{
		c: c, out: out, diag: diag,
		chats:    make(map[string]*chatInfo),
		peerChat: make(map[string]string),
		names:    make(map[string]string),
		phones:   make(map[string]string),
		ownSeq:   make(map[string]int64),
		ticks:    make(map[string]int),
		hinted:   make(map[string]bool),
	}
}

func (l *chatLoop) run(ctx context.Context, in io.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	queue := make(chan chatSendReq, chatMaxQueued)
	results := make(chan chatSendResult, chatMaxQueued)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.sender(ctx, queue, results)
	}()
	defer func() {
		cancel()
		wg.Wait()
		l.pollSession()
	}()
	lines := chatLines(ctx, in)

	l.me = l.c.Session().UserID
	if me, err := l.callMe(ctx); err != nil {
		fmt.Fprintf(l.diag, "warning: %v\n", err)
	} else {
		l.me = me.UserID
		if me.Name != "" {
			l.names[me.UserID] = me.Name
		}
	}
	l.connected = l.c.Connected()
	l.reconnects = l.c.Stats().Reconnects
	l.lastSess = l.c.Session()
	l.help()

	tick := time.NewTicker(chatPoll)
	defer tick.Stop()
	events := l.c.Events()
	for {
		// /quit runs only once every send is answered (see work).
		if l.quit {
			return nil
		}
		// A paste during an outage waits in the pipe, not in memory here.
		input := lines
		if len(l.backlog) >= chatMaxBacklog {
			input = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-input:
			if !ok {
				lines = nil
				l.backlog = append(l.backlog, "/quit")
			} else {
				l.backlog = append(l.backlog, line)
			}
			l.work(ctx, queue)
		case f, ok := <-events:
			if !ok {
				if err := l.c.Err(); err != nil {
					return fmt.Errorf("chat: connection stopped: %w", err)
				}
				return nil
			}
			l.event(ctx, f)
		case r := <-results:
			l.pending--
			l.sentResult(ctx, r)
			l.work(ctx, queue)
		case <-tick.C:
			if !l.quitWait.IsZero() && !l.waitNoted && l.pending > 0 && time.Since(l.quitWait) > time.Second {
				l.waitNoted = true
				fmt.Fprintf(l.diag, "waiting for %d message(s) to be sent (Ctrl-C to give up)…\n", l.pending)
			}
			l.pollConn()
			l.pollSession()
		}
	}
}

// chatLines feeds the lines of in to a channel, closed at the end of in.
// The reader goroutine may stay blocked on a terminal after ctx ends; the
// process exit takes it.
func chatLines(ctx context.Context, in io.Reader) <-chan string {
	ch := make(chan string)
	br, ok := in.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(in)
	}
	go func() {
		defer close(ch)
		for {
			s, err := br.ReadString('\n')
			if s != "" {
				select {
				case ch <- strings.TrimRight(s, "\r\n"):
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

// sender sends one message at a time so they go out in the order typed,
// while the loop keeps printing what arrives.
func (l *chatLoop) sender(ctx context.Context, queue <-chan chatSendReq, results chan<- chatSendResult) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-queue:
			sent, err := l.c.SendWithID(ctx, r.id, r.to, wire.Body{Text: r.text}, "")
			select {
			case results <- chatSendResult{req: r, sent: sent, err: err}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// work runs backlog lines in order. A message is handed to the sender and
// the next line runs at once; a command waits until the messages typed
// before it are answered, so "/history" right after a message shows it.
func (l *chatLoop) work(ctx context.Context, queue chan<- chatSendReq) {
	for len(l.backlog) > 0 && !l.quit {
		line := strings.TrimSpace(l.backlog[0])
		cmd := strings.HasPrefix(line, "/") && !strings.HasPrefix(line, "//")
		if (cmd && l.pending > 0) || (!cmd && l.pending >= chatMaxQueued) {
			if (line == "/quit" || line == "/exit") && l.quitWait.IsZero() {
				l.quitWait = time.Now()
			}
			return
		}
		l.backlog = l.backlog[1:]
		if line == "" {
			continue
		}
		if !cmd {
			l.text(strings.TrimPrefix(line, "/"), queue)
			continue
		}
		l.command(ctx, line)
	}
}

func (l *chatLoop) text(text string, queue chan<- chatSendReq) {
	if l.peer == "" {
		fmt.Fprintln(l.out, "pick someone to talk to first: /to +14155550102 (see /help)")
		return
	}
	// The queue has room: work keeps pending below its capacity.
	queue <- chatSendReq{id: l.c.NewID(), to: l.peer, text: text}
	l.pending++
}

func (l *chatLoop) command(ctx context.Context, line string) {
	name, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	var err error
	switch name {
	case "/help", "/?":
		l.help()
	case "/quit", "/exit":
		l.quit = true
	case "/me":
		err = l.cmdMe(ctx)
	case "/name":
		err = l.cmdName(ctx, arg)
	case "/chats":
		err = l.cmdChats(ctx)
	case "/to":
		err = l.cmdTo(ctx, arg)
	case "/history":
		err = l.cmdHistory(ctx, arg)
	case "/read":
		err = l.cmdRead(ctx)
	default:
		fmt.Fprintf(l.out, "unknown command %s; /help lists them (start a message with // to send a leading /)\n", name)
	}
	if err != nil {
		fmt.Fprintf(l.out, "%s: %s\n", name, chatErrText(err))
	}
}

// chatErrText prefers the server's own words over the SDK's wrapping.
func chatErrText(err error) string {
	var werr *wire.Error
	if errors.As(err, &werr) {
		return werr.Error()
	}
	return err.Error()
}

func (l *chatLoop) help() {
	fmt.Fprint(l.out, `Commands:
  /to +14155550102  talk to this phone number (or a user id, or a number from /chats)
  /chats            your chats: unread counts and last messages
  /history [n]      the last n messages with the current peer (default 20)
  /read             mark what was shown as read (the sender sees ✓✓ read)
  /name NAME        set the name others see
  /me               who you are signed in as
  /help             this text
  /quit             leave (Ctrl-D or Ctrl-C too)
Any other line is a message to the current peer: ✓ sent, ✓✓ delivered, ✓✓ read follow.
`)
}

func (l *chatLoop) callMe(ctx context.Context) (wire.Me, error) {
	cctx, cancel := context.WithTimeout(ctx, chatRESTTimeout)
	defer cancel()
	return l.c.Me(cctx)
}

func (l *chatLoop) cmdMe(ctx context.Context) error {
	me, err := l.callMe(ctx)
	if err != nil {
		return err
	}
	s := l.c.Session()
	name := me.Name
	if name == "" {
		name = "(none: set one with /name)"
	}
	fmt.Fprintf(l.out, "you are %s, user %s, name %s\ndevice %s on %s\n",
		me.Phone, me.UserID, chatClean(name), s.DeviceID, l.c.BaseURL())
	if l.peer != "" {
		fmt.Fprintf(l.out, "talking to %s\n", l.label(ctx, l.peer))
	}
	return nil
}

func (l *chatLoop) cmdName(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("usage: /name Alice")
	}
	cctx, cancel := context.WithTimeout(ctx, chatRESTTimeout)
	defer cancel()
	me, err := l.c.UpdateMe(cctx, wire.MePatch{Name: &name})
	if err != nil {
		return err
	}
	l.names[me.UserID] = me.Name
	fmt.Fprintf(l.out, "name set: %s\n", chatClean(me.Name))
	return nil
}

func (l *chatLoop) cmdChats(ctx context.Context) error {
	chats, err := l.loadChats(ctx)
	if err != nil {
		return err
	}
	if len(chats) == 0 {
		fmt.Fprintln(l.out, "no chats yet: /to +14155550102, then type a message")
		return nil
	}
	l.listed = l.listed[:0]
	for i, ch := range chats {
		info := l.chats[ch.ChatID]
		l.listed = append(l.listed, info.peer)
		title := info.title
		if title == "" {
			title = l.label(ctx, info.peer)
		}
		line := fmt.Sprintf("%2d. %s", i+1, chatClean(title))
		if ch.UnreadCount > 0 {
			line += fmt.Sprintf(" (%d unread)", ch.UnreadCount)
		}
		if m := ch.LastMessage; m != nil {
			line += " — " + l.name(ctx, m.From) + ": " + chatPreview(&m.Body, 50)
		}
		if info.peer == l.peer {
			line += "  ← current"
		}
		fmt.Fprintln(l.out, line)
	}
	fmt.Fprintln(l.out, "(/to N picks one)")
	return nil
}

// loadChats fetches the chat list and learns which chat belongs to which
// peer, since chat ids are opaque and cannot be built from user ids.
func (l *chatLoop) loadChats(ctx context.Context) ([]wire.Chat, error) {
	cctx, cancel := context.WithTimeout(ctx, chatRESTTimeout)
	defer cancel()
	resp, err := l.c.Chats(cctx)
	if err != nil {
		return nil, err
	}
	for _, ch := range resp.Chats {
		info := l.chat(ch.ChatID)
		info.group = ch.Kind == wire.KindGroup
		info.title = ch.Title
		if info.group {
			info.peer = ch.ChatID
		} else {
			info.peer = l.me // a chat with oneself has only oneself
			for _, m := range ch.Members {
				if m != l.me {
					info.peer = m
				}
			}
		}
		l.peerChat[info.peer] = ch.ChatID
	}
	return resp.Chats, nil
}

func (l *chatLoop) chat(id string) *chatInfo {
	info := l.chats[id]
	if info == nil {
		info = &chatInfo{}
		l.chats[id] = info
	}
	return info
}

func (l *chatLoop) cmdTo(ctx context.Context, arg string) error {
	if arg == "" {
		if l.peer == "" {
			return errors.New("usage: /to +14155550102 (or a user id, or a number from /chats)")
		}
		fmt.Fprintf(l.out, "talking to %s\n", l.label(ctx, l.peer))
		return nil
	}
	peer := ""
	switch {
	case strings.HasPrefix(arg, "+"):
		cctx, cancel := context.WithTimeout(ctx, chatRESTTimeout)
		defer cancel()
		resp, err := l.c.Lookup(cctx, []string{arg})
		if err != nil {
			return err
		}
		if len(resp.Contacts) == 0 {
			return fmt.Errorf("no Tern user has the number %s (they sign in once with tern chat --phone %s)", arg, arg)
		}
		ct := resp.Contacts[0]
		peer = ct.UserID
		l.phones[peer] = ct.Phone
		if ct.Name != "" {
			l.names[peer] = ct.Name
		}
	case strings.HasPrefix(arg, "u"):
		cctx, cancel := context.WithTimeout(ctx, chatRESTTimeout)
		defer cancel()
		u, err := l.c.User(cctx, arg)
		if err != nil {
			return err
		}
		peer = u.UserID
		if u.Name != "" {
			l.names[peer] = u.Name
		}
	case strings.HasPrefix(arg, "g"):
		peer = arg // groups have no lookup in the SDK; the send will tell
	default:
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > len(l.listed) {
			return fmt.Errorf("%q is not a +phone, a user id or a number from /chats", arg)
		}
		peer = l.listed[n-1]
	}
	l.peer = peer
	fmt.Fprintf(l.out, "talking to %s; type a message and press Enter\n", l.label(ctx, peer))
	return nil
}

// chatFor finds the chat with peer, asking the server when this session has
// not seen it yet.
func (l *chatLoop) chatFor(ctx context.Context, peer string) (string, error) {
	if id, ok := l.peerChat[peer]; ok {
		return id, nil
	}
	if _, err := l.loadChats(ctx); err != nil {
		return "", err
	}
	return l.peerChat[peer], nil
}

func (l *chatLoop) cmdHistory(ctx context.Context, arg string) error {
	n := chatHistoryDefault
	if arg != "" {
		v, err := strconv.Atoi(arg)
		if err != nil || v < 1 {
			return errors.New("usage: /history [n], n a positive number")
		}
		n = min(v, chatHistoryMax)
	}
	if l.peer == "" {
		return errors.New("pick a chat first with /to")
	}
	chatID, err := l.chatFor(ctx, l.peer)
	if err != nil {
		return err
	}
	if chatID == "" {
		fmt.Fprintf(l.out, "no messages with %s yet\n", l.label(ctx, l.peer))
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, chatRESTTimeout)
	defer cancel()
	resp, err := l.c.History(cctx, chatID, 0, n)
	if err != nil {
		return err
	}
	if len(resp.Messages) == 0 {
		fmt.Fprintf(l.out, "no messages with %s yet\n", l.label(ctx, l.peer))
		return nil
	}
	info := l.chat(chatID)
	fmt.Fprintf(l.out, "— last %d with %s —\n", len(resp.Messages), l.label(ctx, l.peer))
	for i := len(resp.Messages) - 1; i >= 0; i-- { // the server sends newest first
		m := resp.Messages[i]
		if m.From == l.me {
			l.ownSeq[m.MsgID] = m.Seq
		}
		info.shown = max(info.shown, m.Seq)
		fmt.Fprintf(l.out, "[%s] %s: %s\n", chatClock(m.TS), l.name(ctx, m.From), chatText(&m.Body))
	}
	return nil
}

func (l *chatLoop) cmdRead(ctx context.Context) error {
	if l.peer == "" {
		return errors.New("pick a chat first with /to")
	}
	chatID := l.peerChat[l.peer]
	var seq int64
	if chatID != "" {
		seq = l.chat(chatID).shown
	}
	if seq == 0 {
		return errors.New("nothing of this chat was shown yet; /history shows it")
	}
	cctx, cancel := context.WithTimeout(ctx, chatRESTTimeout)
	defer cancel()
	if err := l.c.Read(cctx, chatID, seq); err != nil {
		return err
	}
	fmt.Fprintf(l.out, "marked read up to #%d\n", seq)
	return nil
}

func (l *chatLoop) sentResult(ctx context.Context, r chatSendResult) {
	if r.err != nil {
		if !errors.Is(r.err, context.Canceled) {
			fmt.Fprintf(l.out, "  ✗ not sent (%s): %s\n", chatErrText(r.err), chatPreview(&wire.Body{Text: r.req.text}, 30))
		}
	} else {
		s := r.sent
		l.ownSeq[s.MsgID] = s.Seq
		info := l.chat(s.ChatID)
		if info.peer == "" {
			info.peer = r.req.to
			info.group = strings.HasPrefix(r.req.to, "g")
		}
		l.peerChat[r.req.to] = s.ChatID
		fmt.Fprintf(l.out, "  ✓ sent #%d (%s)\n", s.Seq, chatShortID(s.MsgID))
	}
	early := l.early
	l.early = nil
	for _, f := range early {
		l.receipt(ctx, f)
	}
}

func (l *chatLoop) event(ctx context.Context, f wire.ServerFrame) {
	switch f.Type {
	case wire.TypeMessage:
		l.message(ctx, f)
	case wire.TypeReceipt:
		l.receipt(ctx, f)
	case wire.TypeError:
		fmt.Fprintf(l.diag, "server: %s: %s\n", f.Code, chatClean(f.Message))
	}
	// Typing, presence and group events are left out to keep the screen calm.
}

func (l *chatLoop) message(ctx context.Context, f wire.ServerFrame) {
	info := l.chat(f.ChatID)
	if info.peer == "" {
		switch {
		case strings.HasPrefix(f.ChatID, "g"):
			info.peer, info.group = f.ChatID, true
		case f.From != l.me:
			info.peer = f.From
		}
		if info.peer != "" {
			l.peerChat[info.peer] = f.ChatID
		}
	}
	if f.From == l.me {
		l.ownSeq[f.MsgID] = f.Seq // written on another of my devices
	}
	info.shown = max(info.shown, f.Seq)
	from := l.name(ctx, f.From)
	if info.group {
		from = chatClean(l.groupTitle(info)) + " / " + from
	}
	fmt.Fprintf(l.out, "[%s] %s: %s\n", chatClock(f.TS), from, chatText(f.Body))
	if info.peer != "" && info.peer != l.peer && !l.hinted[f.ChatID] {
		l.hinted[f.ChatID] = true
		fmt.Fprintf(l.out, "  (reply with /to %s)\n", l.replyHandle(info.peer))
	}
}

func (l *chatLoop) groupTitle(info *chatInfo) string {
	if info.title != "" {
		return info.title
	}
	return info.peer
}

func (l *chatLoop) replyHandle(peer string) string {
	if p := l.phones[peer]; p != "" {
		return p
	}
	return peer
}

const (
	tickDelivered = 2
	tickRead      = 3
)

// receipt prints ticks once each and never backwards: receipts may repeat
// after a reconnect and a read may overtake a delivered.
func (l *chatLoop) receipt(ctx context.Context, f wire.ServerFrame) {
	level, label := 0, ""
	switch f.Status {
	case "delivered":
		level, label = tickDelivered, "✓✓ delivered"
	case "read":
		level, label = tickRead, "✓✓ read"
	default:
		return
	}
	info := l.chats[f.ChatID]
	var later []string
	for _, id := range f.MsgIDs {
		seq, known := l.ownSeq[id]
		if !known && l.pending > 0 {
			// The sent answer and this receipt raced to the screen; wait for
			// the answer so the ticks come in order and carry the seq.
			later = append(later, id)
			continue
		}
		key := id + "|" + f.By
		if l.ticks[key] >= level {
			continue
		}
		l.ticks[key] = level
		tag := "(" + chatShortID(id) + ")"
		if known {
			tag = fmt.Sprintf("#%d %s", seq, tag)
		}
		by := ""
		if info != nil && info.group {
			by = " by " + l.name(ctx, f.By)
		}
		fmt.Fprintf(l.out, "  %s %s%s\n", label, tag, by)
	}
	if len(later) > 0 {
		g := f
		g.MsgIDs = later
		l.early = append(l.early, g)
	}
}

func (l *chatLoop) pollConn() {
	now := l.c.Connected()
	rc := l.c.Stats().Reconnects
	switch {
	case l.connected && !now:
		fmt.Fprintln(l.diag, "connection lost; reconnecting…")
	case !l.connected && now:
		fmt.Fprintln(l.diag, "connected again")
	case now && rc > l.reconnects:
		fmt.Fprintln(l.diag, "the connection dropped and came back")
	}
	l.connected, l.reconnects = now, rc
}

// pollSession saves rotated tokens soon: the SDK refreshes on its own, and a
// stale refresh token presented later gets the device revoked.
func (l *chatLoop) pollSession() {
	s := l.c.Session()
	if s == l.lastSess {
		return
	}
	l.lastSess = s
	if l.onSession != nil {
		l.onSession(s)
	}
}

// name is what to call a user: "me", their profile name, the phone they
// were looked up by, or else their id.
func (l *chatLoop) name(ctx context.Context, id string) string {
	if id == l.me && id != "" {
		return "me"
	}
	if n, ok := l.names[id]; ok && n != "" {
		return chatClean(n)
	}
	if p := l.phones[id]; p != "" {
		return p
	}
	if strings.HasPrefix(id, "u") {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		u, err := l.c.User(cctx, id)
		cancel()
		if err == nil && u.Name != "" {
			l.names[id] = u.Name
			return chatClean(u.Name)
		}
	}
	return chatClean(id)
}

// label names a peer for "talking to" lines: the name and, when known, the
// phone.
func (l *chatLoop) label(ctx context.Context, peer string) string {
	if peer == l.me {
		return "yourself"
	}
	if info := l.chats[l.peerChat[peer]]; info != nil && info.group {
		return "group " + chatClean(l.groupTitle(info))
	}
	n := l.name(ctx, peer)
	if p := l.phones[peer]; p != "" && p != n {
		return n + " (" + p + ")"
	}
	return n
}

func chatClock(ms int64) string { return time.UnixMilli(ms).Format("15:04") }

func chatShortID(id string) string {
	// Ids start with their time, so the random tail tells them apart.
	if len(id) > 6 {
		return "…" + id[len(id)-6:]
	}
	return id
}

func chatText(b *wire.Body) string {
	if b == nil {
		return "(empty)"
	}
	s := b.Text
	switch {
	case b.MediaID != "" && b.Caption != "":
		s = "[media] " + b.Caption
	case b.MediaID != "":
		s = "[media]"
	}
	// Indented continuation lines cannot pass for a message of their own.
	return strings.ReplaceAll(chatClean(s), "\n", "\n        ")
}

func chatPreview(b *wire.Body, n int) string {
	s := strings.ReplaceAll(chatText(b), "\n", " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// chatClean makes text from other users safe for a terminal: escape
// sequences could otherwise rewrite the screen or fake a message.
func chatClean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case unicode.IsControl(r), r == '\u2028', r == '\u2029':
			return '\uFFFD'
		}
		return r
	}, s)
}
