package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runCmd runs the command line in-process and returns its exit status and
// outputs. A command that should have been refused but starts serving is
// stopped by the deadline, and then reports 0.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var so, se bytes.Buffer
	code = run(ctx, args, &so, &se)
	return code, so.String(), se.String()
}

// TestOpsHelpOnStdout: --help and -h of every command print the help to
// stdout and exit 0, listing flags as --flag with their environment
// variable and default; a bad flag still goes to stderr with exit 2.
func TestOpsHelpOnStdout(t *testing.T) {
	// A secret in the environment must not show as a default.
	t.Setenv("TERN_ADMIN_TOKEN", "env-secret-9f2c")
	singleDash := regexp.MustCompile(`(?m)^\s+-[a-z]`)
	for _, cmd := range []string{"serve", "bench", "backup", "restore", "chat"} {
		for _, h := range []string{"--help", "-h"} {
			code, out, errOut := runCmd(t, cmd, h)
			if code != 0 || errOut != "" {
				t.Errorf("tern %s %s: exit %d, stderr %q; want 0 and nothing on stderr", cmd, h, code, errOut)
			}
			if !strings.HasPrefix(out, "Usage: tern "+cmd) {
				t.Errorf("tern %s %s: stdout does not start with the usage:\n%s", cmd, h, out)
			}
			if singleDash.MatchString(out) {
				t.Errorf("tern %s %s lists flags as -flag:\n%s", cmd, h, out)
			}
			if strings.Contains(out, "env-secret-9f2c") {
				t.Errorf("tern %s %s shows the secret from TERN_ADMIN_TOKEN", cmd, h)
			}
		}
		code, out, errOut := runCmd(t, cmd, "--no-such-flag")
		if code != 2 || out != "" || !strings.Contains(errOut, "--no-such-flag") {
			t.Errorf("tern %s --no-such-flag: exit %d, stdout %q, stderr %q; want 2 and the error on stderr", cmd, code, out, errOut)
		}
	}

	_, help, _ := runCmd(t, "serve", "--help")
	for _, want := range []string{
		"--addr HOST:PORT", "TERN_ADDR, default 127.0.0.1:8080",
		"--data-dir", "TERN_DATA_DIR, default ./data",
		"--shutdown-grace duration", "TERN_SHUTDOWN_GRACE, default 15s",
		"--dev\n", "TERN_DEV",
		"--metrics-addr HOST:PORT", "TERN_METRICS_ADDR",
		"--http-read-timeout", "--http-write-timeout",
		"--admin-token-file FILE", "TERN_ADMIN_TOKEN_FILE",
		"--mongo-uri-file FILE", "--amqp-url-file FILE", "--sms-http-url-file FILE",
		"ps",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
	// Every flag of serve is listed, with its variable.
	var c serveConfig
	fs := serveFlags(&c)
	for _, name := range []string{"addr", "store", "router", "sms-provider", "admin-addr", "refresh-ttl"} {
		if fs.Lookup(name) == nil {
			t.Fatalf("no flag %s", name)
		}
		if !strings.Contains(help, "--"+name+" ") && !strings.Contains(help, "--"+name+"\n") {
			t.Errorf("serve --help lacks --%s", name)
		}
		if !strings.Contains(help, fs.envName(name)) {
			t.Errorf("serve --help lacks %s", fs.envName(name))
		}
	}

	// The real binary, as a user runs it: `tern serve --help | less`.
	cmd := exec.Command(ternBinary(t), "serve", "--help")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil || se.Len() != 0 || !strings.Contains(so.String(), "--addr") {
		t.Fatalf("tern serve --help: %v, stdout %d bytes, stderr %q", err, so.Len(), se.String())
	}
}

// TestOpsFlagsCheckedBeforeDisk: every mistake in the flags, their
// combinations and the environment is reported (exit 2) before the data
// directory is created or a port opened.
func TestOpsFlagsCheckedBeforeDisk(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string // NAME=value pairs
		args []string
		want []string
	}{
		{"mongo without uri", nil, []string{"--store", "mongo"}, []string{"--store mongo needs --mongo-uri"}},
		{"rabbitmq without url", nil, []string{"--router", "rabbitmq"}, []string{"--router rabbitmq needs --amqp-url"}},
		{"both at once", nil, []string{"--store", "mongo", "--router", "rabbitmq"},
			[]string{"--store mongo needs --mongo-uri", "--router rabbitmq needs --amqp-url"}},
		{"unknown store", nil, []string{"--store", "sqlite"}, []string{`--store "sqlite"`}},
		{"bad write concern", nil, []string{"--store", "mongo", "--mongo-uri", "mongodb://h/", "--mongo-write-concern", "0"},
			[]string{"--mongo-write-concern"}},
		{"bad amqp url", nil, []string{"--router", "rabbitmq", "--amqp-url", "http://guest:pw-1x@h/"}, []string{"--amqp-url: want amqp://"}},
		{"http sms without url", nil, []string{"--sms-provider", "http"}, []string{"--sms-provider http needs --sms-http-url"}},
		{"unknown push", nil, []string{"--push", "apns"}, []string{`--push "apns"`}},
		{"negative duration", nil, []string{"--shutdown-grace", "-1s"}, []string{"--shutdown-grace -1s: must be positive"}},
		{"duration without unit", nil, []string{"--code-ttl", "5"}, []string{"--code-ttl"}},
		{"zero read timeout", nil, []string{"--http-read-timeout", "0s"}, []string{"--http-read-timeout 0s: must be positive"}},
		{"bad duration in env", []string{"TERN_DRAIN_DELAY=soon"}, nil, []string{"TERN_DRAIN_DELAY"}},
		{"negative limit", nil, []string{"--window", "-1"}, []string{"--window -1: must be positive"}},
		{"tls half", nil, []string{"--tls-cert", "c.pem"}, []string{"--tls-cert and --tls-key go together"}},
		{"plain http in public", nil, []string{"--addr", "0.0.0.0:0", "--dev"}, []string{"refusing plain HTTP"}},
		{"bad admin addr", nil, []string{"--admin-addr", "9090"}, []string{"--admin-addr"}},
		{"bad log level", nil, []string{"--log-level", "loud"}, []string{"--log-level"}},
		{"stray argument", nil, []string{"extra"}, []string{"unexpected arguments: extra"}},
		{"bad frame rate", nil, []string{"--typing-rate", "0/5"}, []string{"--typing-rate"}},
		{"rate without burst", nil, []string{"--read-rate", "100"}, []string{"--read-rate"}},
		{"origin with a path", nil, []string{"--allowed-origins", "https://ok.example, https://x.example/app"}, []string{"--allowed-origins"}},
		{"short master key", []string{"TERN_MASTER_KEY=abcd"}, nil, []string{"--master-key: want 32 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, kv := range tc.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			dir := filepath.Join(t.TempDir(), "data")
			args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dir}, tc.args...)
			code, out, errOut := runCmd(t, args...)
			if code != 2 || out != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing on stdout", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if strings.Contains(errOut, "pw-1x") {
				t.Errorf("stderr shows a password from a URL:\n%s", errOut)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("the data directory was created before the flags were checked")
			}
		})
	}
}

// TestOpsSecretsWithoutCommandLine: secret flags come from a file or the
// environment as well; conflicting sources are refused; no message shows
// a secret.
func TestOpsSecretsWithoutCommandLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokenFile := write("token", "tok-from-file-77\n")
	uriFile := write("uri", "mongodb://u:pw-from-file@h/\n")
	empty := write("empty", "\n")
	parse := func(args ...string) (serveConfig, error) {
		var c serveConfig
		return c, serveFlags(&c).parse(args)
	}

	c, err := parse("--admin-token-file", tokenFile, "--mongo-uri-file", uriFile)
	if err != nil || c.adminToken != "tok-from-file-77" || c.mongoURI != "mongodb://u:pw-from-file@h/" {
		t.Fatalf("from files: %v, token %q, uri %q", err, c.adminToken, c.mongoURI)
	}
	t.Setenv("TERN_AMQP_URL_FILE", write("amqp", "amqp://u:pw-amqp@h/"))
	t.Setenv("TERN_ADMIN_TOKEN", "tok-from-env")
	if c, err = parse(); err != nil || c.amqpURL != "amqp://u:pw-amqp@h/" || c.adminToken != "tok-from-env" {
		t.Fatalf("from the environment: %v, amqp %q, token %q", err, c.amqpURL, c.adminToken)
	}
	// The command line wins over the environment, file or not.
	if c, err = parse("--admin-token-file", tokenFile); err != nil || c.adminToken != "tok-from-file-77" {
		t.Fatalf("command line over environment: %v, token %q", err, c.adminToken)
	}
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--admin-token", "tok-cmdline", "--admin-token-file", tokenFile}, "--admin-token and --admin-token-file"},
		{[]string{"TERN_ADMIN_TOKEN_FILE=" + tokenFile}, nil, "TERN_ADMIN_TOKEN and TERN_ADMIN_TOKEN_FILE are both set"},
		{nil, []string{"--mongo-uri-file", empty}, "is empty"},
		{nil, []string{"--mongo-uri-file", filepath.Join(dir, "missing")}, "--mongo-uri-file"},
	} {
		for _, kv := range tc.env {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		_, err := parse(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want %q", tc.env, tc.args, err, tc.want)
		}
		for _, secret := range []string{"tok-", "pw-"} {
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("error shows a secret: %v", err)
			}
		}
	}
}
