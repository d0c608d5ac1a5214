package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestBenchHelpDocumentsServerCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"bench", "--help"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	help := out.String()
	for _, want := range []string{"--sms-provider http", "--codes-per-ip-hour 0", "--verifies-per-ip-hour 0",
		"--sends-per-second 100000", "--send-burst 100000", "-inflight", "TERN_BENCH_PAIRS", "TERN_BENCH_SESSIONS",
		"TERN_BENCH_GROUP_MEMBERS", "TERN_BENCH_GROUP_DEVICES", "TERN_BENCH_GROUP_CONNECTED", "TERN_BENCH_GROUP_SENDERS",
		"TERN_BENCH_FOLLOWS", "TERN_BENCH_CHURN", "presence", "business", "--webhook-allow-private", "TERN_BENCH_BUSINESSES",
		"TERN_BENCH_BUSINESS_FILE", "TERN_BENCH_ADMIN_ADDR", "TERN_BENCH_ADMIN_TOKEN", "--admin-token-file", "TERN_BENCH_RATE_LIMIT",
		"TERN_BENCH_SEND_RATE", "TERN_BENCH_PHASES", "TERN_BENCH_WEBHOOK_LISTEN", "TERN_BENCH_NODES"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
}

func TestBenchRejectsBadConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"bench", "--mode", "nope"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), `mode "nope"`) {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	t.Setenv("TERN_BENCH_PAIRS", "many")
	errOut.Reset()
	if code := run(context.Background(), []string{"bench"}, &out, &errOut); code == 0 ||
		!strings.Contains(errOut.String(), "TERN_BENCH_PAIRS") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestBenchRejectsBadGroup(t *testing.T) {
	for _, args := range [][]string{
		{"--group-members", "1025"},
		{"--group-members", "10", "--group-connected", "11"},
		{"--group-connected", "4", "--group-senders", "5"},
		{"--group-devices", "9"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), append([]string{"bench", "--mode", "group"}, args...), &out, &errOut); code != 1 ||
			!strings.Contains(errOut.String(), "group") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}

func TestBenchRejectsBadPresence(t *testing.T) {
	for _, args := range [][]string{
		{"--follows", "257"},
		{"--conns", "10", "--follows", "10"},
		{"--churn", "2"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), append([]string{"bench", "--mode", "presence"}, args...), &out, &errOut); code != 1 ||
			!(strings.Contains(errOut.String(), "follows") || strings.Contains(errOut.String(), "churn")) {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}

func TestBenchRejectsBadBusiness(t *testing.T) {
	for _, args := range [][]string{
		{"--phases", "all"},
		{"--businesses", "65", "--conns", "100"},
		{"--businesses", "5", "--conns", "4"},
		{"--rate-limit", "1001"},
		{"--send-rate", "-1"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), append([]string{"bench", "--mode", "business"}, args...), &out, &errOut); code != 1 ||
			!strings.Contains(errOut.String(), "bench:") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"bench", "--mode", "closed", "--nodes", "127.0.0.1:8082"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "nodes") {
		t.Errorf("--nodes in closed mode: exit %d, stderr %q", code, errOut.String())
	}
}
