package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

const version = "0.1.0"

func main() {
	// SIGINT (Ctrl-C, the normal way to stop a node in a terminal) and
	// SIGTERM (supervisors) both stop gracefully, and a graceful stop exits
	// 0. Once one arrived the default action is back, so a second Ctrl-C
	// ends a drain that takes too long.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "bench":
		err = bench(ctx, args[1:], stdout, stderr)
	case "chat":
		err = chat(ctx, args[1:], os.Stdin, stdout, stderr)
	case "admin":
		err = admin(ctx, args[1:], stdout, stderr)
	case "business":
		err = businessCmd(ctx, args[1:], stdout, stderr)
	case "backup":
		err = backup(ctx, args[1:], stdout, stderr)
	case "restore":
		err = restore(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "tern", versionString())
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "tern: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return exitCode(args[0], err, stdout, stderr)
}

// exitCode reports err and turns it into the exit status: 0 for success
// and for --help (whose text goes to stdout), 2 for a mistake in the flags
// or the environment, 1 for a failure.
func exitCode(cmd string, err error, stdout, stderr io.Writer) int {
	var help *helpRequest
	var bad *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &help):
		fmt.Fprint(stdout, help.text)
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.As(err, &bad):
		fmt.Fprintf(stderr, "tern %s: %v\nRun \"tern %s --help\" for its flags.\n", cmd, err, cmd)
		return 2
	}
	fmt.Fprintln(stderr, "tern:", err)
	return 1
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: tern <command> [flags]

Commands:
  serve     run a Tern node (embedded single node by default)
  bench     load-test a running node through the real protocol
  chat      a terminal chat client: sign in, list chats, send, watch messages
  admin     ask a running node to make or reset dashboard accounts, or to
            rotate its signing keys (admin API)
  business  ask a running node to make a business account (business API)
  backup    stream a consistent snapshot of a running node's embedded store
            (not the media files: copy --media-dir, or keep the S3 bucket's versions)
  restore   unpack a snapshot into an empty data directory
  version   print the version

Run "tern <command> --help" for the flags of a command.
`)
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 7 {
				v += "+" + s.Value[:7]
			}
		}
	}
	return v
}
