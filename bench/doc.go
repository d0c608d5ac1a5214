// Package bench is Tern's load generator, behind `tern bench`. It drives
// simulated devices through the real protocol (REST sign-up, then the
// WebSocket, all through the Go SDK in package client) against a running
// server and reports what the server delivered, how fast, and what it cost.
//
// The server under test is started so that sign-up codes reach the bench
// and the abuse limits do not throttle it:
//
//	tern serve --sms-provider http --sms-http-url http://127.0.0.1:9099/ \
//	  --codes-per-ip-hour 0 --verifies-per-ip-hour 0 \
//	  --sends-per-second 100000 --send-burst 100000
//
// # Provisioning
//
// Every simulated device is a phone number signed in through the code
// flow: the bench asks for a code, its own SMS sink (Config.SMSListen)
// receives the server's POST, and the bench verifies the code. Phones are
// valid US numbers +1 AAA 555 LLLL over 318 area codes; Config.RunID picks
// where in that space a run starts, so a fresh run id means fresh users.
// With Config.SessionsFile the sessions are saved, and the next run
// refreshes their tokens instead of signing up again.
//
// # Modes
//
//   - idle: connect Conns devices, hold them, and compare the server's
//     resident memory, heap and goroutines before and after: the cost of
//     one idle connection.
//   - closed: Pairs sender→receiver pairs; each sender keeps Inflight
//     messages outstanding. A message completes when its sender gets the
//     delivered receipt, which needs the whole path: send, durable store,
//     sent answer, delivery to the receiver, the receiver's ack, the
//     receipt back to the sender.
//   - rate: the same pairs, open loop at Rate messages per second in all,
//     due times spread evenly over the senders. Latencies count from the
//     due time, not from when the send went out, so a stalled server is
//     charged for the sends it delayed (no coordinated omission).
//   - group: one group of GroupMembers members (one POST /v1/groups),
//     GroupDevices devices each (each a sign-in of the member's phone, one
//     after another). The devices of GroupConnected members connect; the
//     others never do, so their inbox events pile up like phones that are
//     off. GroupSenders connected members send to the group at Rate group
//     messages/s in all, open loop as in rate mode. Every connected device
//     counts what it gets (once per message) and acks; a message is
//     complete when every connected device but the sending one has it, and
//     its latency to the last of them is recorded. Deliveries that a
//     message answered sent still lacks after the drain are lost.
//   - presence: Conns devices, one per user, each following Follows other
//     users (presence_sub), picked pseudo-randomly from a fixed seed so
//     every run of a size has the same follow graph. Once every device has
//     the first answer about each user it follows, the churn starts: for
//     Duration, Churn×Conns changes a second, due times spread evenly,
//     each closing an online device or connecting an offline one again
//     (with a new SDK client, which then subscribes again). A device that
//     changed is not picked again for a cooldown (0.1/Churn s, at most
//     5 s): a reconnect that reached the server before it had handled the
//     close would cancel out with it, and frames are matched to the last
//     two changes of their user. A change counts the followers online and
//     answered at that moment: the frames the server owes. A follower's
//     presence frame with the state of such a change is matched to it and
//     timed from when the bench started the connect or close (going
//     offline is seen when the server handles the close, which a clean
//     close makes immediate). What followers still online lack after the
//     drain is missing; what a follower lacked when it went offline itself
//     is reported apart. The server's CPU over the churn is divided by the
//     changes and by the events delivered.
//   - media: one user uploads MediaCount files of MediaSize random bytes
//     as kind document (which takes any type, and is stored as sent, with
//     no image processing), MediaParallel at a time, then downloads each
//     through the link its upload answered, with no token, as a chat
//     member's app would. Every upload answer and every download must
//     have the size and sha256 of the file sent. Each direction reports
//     MiB/s (bytes over wall time, all transfers together) and per-file
//     times; meanwhile the server's /metrics is read every 100 ms, and the
//     report gives its resident memory before the first transfer and at
//     its peak: a server that streams files keeps it flat whatever their
//     size. The files are cut from a 4 MiB random pool (see payload.go)
//     and hashed before the clock starts, so the bench's own cost stays
//     small. With media S3 the links point at S3: the downloads never
//     touch the node. Each upload counts against the server's
//     --uploads-per-user-hour (200 by default) and must fit its
//     --max-document-bytes (100 MiB).
//   - business: the business API in the Cloud API's shape. Businesses
//     (Businesses of them) are made through the node's admin listener
//     (AdminAddr, AdminToken: POST /admin/v1/businesses, as tern business
//     create does) or read from BusinessFile; with the admin token the
//     bench also makes (or resets) the dashboard account tern-bench,
//     signs in to the admin API with it and sets each business's
//     rate_per_second (RateLimit, at most 1,000) with its 24-hour rule
//     off. A webhook receiver in the bench (WebhookListen) answers the
//     verification GET of each business's subscribed_apps, checks every
//     POST's X-Hub-Signature-256 against the business's app secret
//     (answering 403 otherwise) and hands on its messages and statuses.
//     Conns customers connect, customer i to business i mod Businesses.
//     The webhooks phase: the customers write at Rate messages/s in
//     all, open loop; each message is timed from its due time to its
//     webhook POST and to its delivered receipt (the server acks a queue
//     event after the webhook's 2xx). The sends phase: Inflight workers
//     POST text messages through /v23.0/{phone_number_id}/messages,
//     closed loop (a worker refused with 130429 waits 50 ms) or at
//     SendRate; each accepted send is timed to its 200, to its customer,
//     and to its sent and delivered status POSTs. The webhooks phase runs
//     first, since a business's queue is one FIFO: statuses owed by the
//     sends would hold its customers' messages back. Each phase has its
//     own warmup, window and drain, and reports the server's CPU (with
//     Nodes, every node's /metrics summed) and the bench's apart. The
//     server must let webhooks reach the receiver on loopback
//     (--webhook-allow-private). At the end the bench removes the
//     businesses' webhooks; what their queues still hold stays there.
//
// # What it guarantees
//
// Latencies are kept in a log-linear histogram (Recorder) of fixed size,
// exact to within 0.8%, for any number of messages. Every message carries
// its send time and a per-pair sequence number in its text, so the
// receiver times it and detects duplicates without shared state. A
// message answered sent that got no delivered receipt by the end of the
// drain (Config.Drain) is reported as lost; any message a receiver's
// application sees twice is reported as a duplicate. Both must be zero.
//
// The generator shares the machine with the server, so it stays lean: no
// goroutine per message (one per closed-loop slot or rate worker, and one
// event reader per device, besides the SDK's own), and it reports its own
// CPU time per message (getrusage) next to the server's
// (process_cpu_seconds_total from /metrics), so a reader can tell how much
// of the machine each used.
package bench
