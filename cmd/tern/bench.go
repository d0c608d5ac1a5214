package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"

	tbench "github.com/tern-im/tern/bench"
)

// benchHelp is the text --help prints before the flags.
func benchHelp() string {
	return `Usage: tern bench [flags]

Drives simulated devices through the real protocol (REST sign-up by SMS
code, then WebSocket, through the Go SDK) against a running node, and
prints connections, messages/s, latency percentiles and server memory.

Start the server under test so that codes reach the bench's SMS sink and
the abuse limits do not throttle it:

  ` + strings.NewReplacer(" --codes", " \\\n      --codes", " --sends", " \\\n      --sends").Replace(tbench.ServerCommand) + `

Modes:
  idle    connect --conns devices, hold them --hold, report the server's
          memory (RSS, heap) and goroutines per connection
  closed  --pairs sender→receiver pairs, each sender keeps --inflight
          messages outstanding; a message completes when its sender gets
          the delivered receipt. Reports completed messages/s and
          send→sent, send→received, send→delivered percentiles
  rate    the same pairs, open loop at --rate messages/s in all; latencies
          count from each message's due time
  group   one group of --group-members members with --group-devices
          devices each (each a sign-in of the member's phone); the devices
          of --group-connected members connect, the others stay offline
          and their inboxes fill. --group-senders connected members send
          --size-byte messages to the group at --rate group messages/s in
          all (default 20; --size default 100, --duration default 30s).
          Reports sent/s, deliveries/s to connected devices, lost
          deliveries, and due→sent and due→last-device percentiles
  presence
          --conns devices, one per user, each following --follows others
          (presence_sub; default 50, at most 256, picked pseudo-randomly
          from a fixed seed); once every subscription is answered, a
          --churn fraction of the devices changes each second for
          --duration (default 60s): an online one closes, an offline one
          connects again and subscribes. Reports presence events expected
          (followers online at each change) and received, events/s,
          change→follower percentiles, and the server's CPU per change
          and per event
  media   one user uploads --media-count files (default 20) of
          --media-size random bytes (default 1MiB; 64MiB with
          --media-count 3, say) as kind document, --media-parallel at a
          time, then downloads each through its link (GET, no token),
          checking its length and sha256. Reports upload and download
          MiB/s, and the server's resident memory before and at its
          peak during each phase (read from /metrics every 100 ms: it
          should stay flat, the server streams files). Each upload counts
          against the server's --uploads-per-user-hour (default 200) and
          must fit its --max-document-bytes (default 100 MiB); with
          --sessions the same user uploads again in later runs, so start
          the server with a larger quota (--uploads-per-user-hour 10000)
  business
          the business API (Cloud API shape). --businesses businesses
          (default 1) are made through the node's admin listener
          (--admin-addr, --admin-token; or taken from --business-file),
          given --rate-limit sends/s (default 1000, the most) with the
          24-hour rule off (through the admin API, as the dashboard
          account tern-bench, which the bench makes or resets), and
          subscribed to the bench's own webhook receiver on
          --webhook-listen, which answers the verification GET and checks
          every POST's X-Hub-Signature-256. --conns customers (default 100)
          connect. Phase webhooks: the customers write to the businesses
          at --rate messages/s in all (default 40); reports webhook
          POSTs/s and due→webhook-POST and due→✓✓ percentiles. Phase
          sends: --inflight workers (default 16) POST text messages to
          the customers through /v23.0/{phone_number_id}/messages, as
          fast as they go or at --send-rate; reports sends/s accepted,
          errors by Graph code, send→200 and send→customer percentiles,
          and the sent and delivered statuses posted to the receiver.
          --duration defaults to 15s per phase. The server must let
          webhooks reach loopback: start it with --webhook-allow-private
          and --admin-addr 127.0.0.1:9090 --admin-token T

Phones are +1 AAA 555 LLLL numbers picked by --run-id (random by default:
fresh users each run). Reuse users with --sessions FILE: the first run
saves the device sessions there, later runs refresh them instead of
signing up again. Reusing a --run-id without --sessions adds a device to
each existing user, which fans messages out to the old devices too.

Flags (each with its environment variable):
`
}

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg tbench.Config
	var asJSON bool
	fs := newFlagSet("tern bench", "TERN_BENCH_")
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchHelp())
		fs.PrintDefaults()
	}
	fs.String(&cfg.Addr, "addr", tbench.DefaultAddr, "server to load: host:port or base URL")
	fs.String(&cfg.Mode, "mode", tbench.ModeClosed, "idle, closed, rate, group, presence, media or business")
	fs.Int(&cfg.Conns, "conns", tbench.DefaultConns, fmt.Sprintf("idle, presence: devices to connect (at most %d); business: customers (default %d)",
		tbench.MaxConns, tbench.DefaultBusinessConns))
	fs.Duration(&cfg.Hold, "hold", tbench.DefaultHold, "idle: how long to hold the connections before measuring")
	fs.Duration(&cfg.Settle, "settle", tbench.DefaultSettle, "idle: wait after sign-up before the memory baseline")
	fs.Int(&cfg.Pairs, "pairs", tbench.DefaultPairs, "closed, rate: sender→receiver device pairs")
	fs.Int(&cfg.Inflight, "inflight", 0, fmt.Sprintf("closed: messages each sender keeps outstanding (default %d); "+
		"rate, group: sends per sender waiting for their answer at once (default %d); business: REST send workers (default %d)",
		tbench.DefaultInflight, tbench.DefaultRateInflight, tbench.DefaultBusinessInflight))
	fs.Duration(&cfg.Duration, "duration", tbench.DefaultDuration, fmt.Sprintf("closed, rate, group, presence, business: measured time (group default %s, presence %s, business %s per phase)",
		tbench.DefaultGroupDuration, tbench.DefaultPresenceDuration, tbench.DefaultBusinessDuration))
	fs.Duration(&cfg.Warmup, "warmup", tbench.DefaultWarmup, "closed, rate, group, business: load before the measured time, not counted")
	fs.Float(&cfg.Rate, "rate", tbench.DefaultRate, fmt.Sprintf("rate: messages per second, all senders together; "+
		"group: group messages per second (group default %d); business: customer messages per second to the businesses (default %d)",
		tbench.DefaultGroupRate, tbench.DefaultBusinessRate))
	fs.Duration(&cfg.Drain, "drain", tbench.DefaultDrain, "closed, rate, group, presence, business: wait at the end for messages (presence events, webhooks) still in flight; then they count as lost")
	fs.Int(&cfg.Size, "size", 0, fmt.Sprintf("pad message texts to this many bytes (0: about 40 bytes of bench data; group: %d)", tbench.DefaultGroupSize))
	fs.Int(&cfg.GroupMembers, "group-members", tbench.DefaultGroupMembers,
		fmt.Sprintf("group: members of the group, its creator included (at most %d)", tbench.MaxGroupMembers))
	fs.Int(&cfg.GroupDevices, "group-devices", tbench.DefaultGroupDevices,
		fmt.Sprintf("group: devices per member, each a sign-in of its phone (at most %d)", tbench.MaxGroupDevices))
	fs.Int(&cfg.GroupConnected, "group-connected", tbench.DefaultGroupConnected, "group: members that connect, with all their devices; the others' devices stay offline")
	fs.Int(&cfg.GroupSenders, "group-senders", tbench.DefaultGroupSenders, "group: connected members that send, from their first device")
	fs.Int(&cfg.Follows, "follows", tbench.DefaultFollows, "presence: other users each device follows (at most 256)")
	fs.Float(&cfg.Churn, "churn", tbench.DefaultChurn, "presence: fraction of the devices that go offline or come back each second")
	cfg.MediaSize = tbench.DefaultMediaSize
	fs.Var(sizeFlag{&cfg.MediaSize}, "media-size", "media: `SIZE` of each file, in bytes or with a unit: 512KiB, 1MiB, 64MiB, 1.5GB")
	fs.Int(&cfg.MediaCount, "media-count", tbench.DefaultMediaCount, "media: files to upload, then download (each counts against the server's --uploads-per-user-hour)")
	fs.Int(&cfg.MediaParallel, "media-parallel", tbench.DefaultMediaParallel,
		fmt.Sprintf("media: transfers at once (at most %d)", tbench.MaxMediaParallel))
	fs.Int(&cfg.Businesses, "businesses", 1, fmt.Sprintf("business: businesses to drive (at most %d); customer i writes to business i mod this", tbench.MaxBusinesses))
	fs.String(&cfg.BusinessFile, "business-file", "", "business: file to keep the businesses in between runs (API tokens and app secrets; "+
		"mode 0600); those in it are used, the rest made and added")
	fs.String(&cfg.AdminAddr, "admin-addr", tbench.DefaultAdminAddr, "business: the node's admin listener (its --admin-addr), which makes businesses")
	fs.String(&cfg.AdminToken, "admin-token", "", "business: the node's --admin-token: makes businesses, and the admin account that sets their rate")
	fs.secret("admin-token")
	fs.Int(&cfg.RateLimit, "rate-limit", tbench.DefaultBusinessRateLimit, "business: rate_per_second to give each business (1 to 1000), 24-hour rule off; needs --admin-token")
	fs.Float(&cfg.SendRate, "send-rate", 0, "business: REST sends per second, all businesses together (0: closed loop, as fast as --inflight workers go)")
	fs.String(&cfg.Phases, "phases", tbench.PhaseWebhooks+","+tbench.PhaseSends, "business: phases to run, in this order: webhooks, sends or both")
	fs.String(&cfg.WebhookListen, "webhook-listen", tbench.DefaultWebhookListen, "business: where the webhook receiver listens (the server must reach it)")
	var nodes string
	fs.String(&nodes, "nodes", "", "business: the cluster's other nodes, comma-separated: the REST sends go to --addr and these in turn, and server figures sum their /metrics")
	fs.String(&cfg.RunID, "run-id", "", "seed of the phone number series (default: random, so fresh users)")
	fs.String(&cfg.SessionsFile, "sessions", "", "file to keep device sessions in between runs (reuse users)")
	fs.String(&cfg.SMSListen, "sms-listen", tbench.DefaultSMSListen, "address of the SMS sink the server's --sms-http-url points at")
	fs.Int(&cfg.Concurrency, "concurrency", tbench.DefaultConcurrency, "sign-ups and connects in flight at once")
	fs.Bool(&asJSON, "json", false, "print the report as JSON on stdout (the table goes to stderr)")
	procs := max(1, runtime.NumCPU()/2)
	fs.Int(&procs, "procs", procs, "the load generator's GOMAXPROCS (default: half the CPUs, at least 1)")
	var cpuProfile string
	fs.String(&cpuProfile, "cpuprofile", "", "write the load generator's own CPU profile of the whole run to this file")
	if err := fs.parse(args); err != nil {
		return err
	}
	cfg.WarmupSet = true // --warmup 0 means none
	if fs.isGiven("media-size") && cfg.MediaSize == 0 {
		// Config takes 0 for the default; on the command line it is a mistake.
		return usagef("--media-size 0: want a positive size")
	}
	switch cfg.Mode {
	case tbench.ModeGroup:
		// Group mode has defaults of its own for the shared flags.
		if !fs.isGiven("rate") {
			cfg.Rate = tbench.DefaultGroupRate
		}
		if !fs.isGiven("duration") {
			cfg.Duration = tbench.DefaultGroupDuration
		}
	case tbench.ModePresence:
		if !fs.isGiven("duration") {
			cfg.Duration = tbench.DefaultPresenceDuration
		}
	case tbench.ModeBusiness:
		if !fs.isGiven("conns") {
			cfg.Conns = tbench.DefaultBusinessConns
		}
		if !fs.isGiven("rate") {
			cfg.Rate = tbench.DefaultBusinessRate
		}
		if !fs.isGiven("duration") {
			cfg.Duration = tbench.DefaultBusinessDuration
		}
	}
	for n := range strings.SplitSeq(nodes, ",") {
		if n = strings.TrimSpace(n); n != "" {
			cfg.Nodes = append(cfg.Nodes, n)
		}
	}

	if procs < 1 {
		return fmt.Errorf("bench: --procs %d: want 1 or more", procs)
	}
	// The generator shares the box with the server in every figure of
	// docs/benchmarks.md. With a P per core, its scheduler spins on every
	// core while it waits for frames, and takes that time from the server:
	// on 2 cores, one P cut the group benchmark's generator from 18.7 to
	// 13.7 µs of CPU per delivery and raised deliveries/s by a fifth.
	runtime.GOMAXPROCS(procs)

	human := stdout
	if asJSON {
		human = stderr
	}
	if cpuProfile != "" {
		// The load generator shares the box with the server in every
		// figure of docs/benchmarks.md: its own cost is worth a profile.
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := tbench.Run(ctx, cfg, human)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return nil
}

// sizeFlag is a byte count flag that takes units (tbench.ParseSize), so
// that --media-size 64MiB says what it means.
type sizeFlag struct{ p *int64 }

func (f sizeFlag) String() string {
	if f.p == nil {
		return ""
	}
	return tbench.FormatSize(*f.p)
}

func (f sizeFlag) Set(s string) error {
	n, err := tbench.ParseSize(s)
	if err != nil {
		return err
	}
	*f.p = n
	return nil
}
