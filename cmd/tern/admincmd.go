package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"golang.org/x/term"
)

const adminHelp = `Usage: tern admin <command> [flags]

Asks a running node to do something through its admin API (its
--admin-addr, behind its --admin-token). Commands:

  create        make an admin dashboard account: --username U; the
                password is asked for (not echoed), or read from the
                first line of stdin when stdin is not a terminal, or of
                --password-file
  reset         give an account a new password (asked for as with create)
                and turn its second factor off: for an admin who lost
                either; its sessions end
  rotate-keys   add a new signing key for access tokens and code hashes;
                tokens signed by older keys stay valid until they expire,
                and the other nodes take the new key up within a minute
`

// admin runs an admin command against a running node.
func admin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprint(stderr, adminHelp)
			return errUsage
		}
		return &helpRequest{text: adminHelp}
	}
	switch args[0] {
	case "rotate-keys":
		return rotateKeys(ctx, args[1:], stdout, stderr)
	case "create":
		return adminAccount(ctx, "create", args[1:], os.Stdin, stdout, stderr)
	case "reset":
		return adminAccount(ctx, "reset", args[1:], os.Stdin, stdout, stderr)
	}
	return usagef("unknown admin command %q (see tern admin --help)", args[0])
}

func rotateKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var addr, token string
	fs := newFlagSet("tern admin rotate-keys", "TERN_")
	fs.SetOutput(stderr)
	fs.String(&addr, "admin-addr", "127.0.0.1:9090", "admin address of a running node (its --admin-addr)")
	fs.String(&token, "admin-token", "", "the node's --admin-token")
	fs.secret("admin-token")
	if err := fs.parse(args); err != nil {
		return err
	}
	if token == "" {
		return usagef("rotate-keys needs the node's admin token: TERN_ADMIN_TOKEN, TERN_ADMIN_TOKEN_FILE or --admin-token-file (or --admin-token, which ps shows)")
	}
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/admin/v1/keys/rotate", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("rotate-keys: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("rotate-keys: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = stdout.Write(body)
	return err
}

// adminAccount makes (create) or resets (reset) a dashboard account
// through a running node's admin listener, so that it works the same on
// the embedded store (whose files the running node holds) and on MongoDB.
func adminAccount(ctx context.Context, cmd string, args []string, stdin *os.File, stdout, stderr io.Writer) error {
	var addr, token, username string
	fs := newFlagSet("tern admin "+cmd, "TERN_")
	fs.SetOutput(stderr)
	fs.String(&addr, "admin-addr", "127.0.0.1:9090", "admin address of a running node (its --admin-addr)")
	fs.String(&token, "admin-token", "", "the node's --admin-token")
	fs.secret("admin-token")
	fs.String(&username, "username", "", "the account's username")
	var passwordFile string
	fs.String(&passwordFile, "password-file", "", "read the password from this file (its first line) instead of asking")
	if err := fs.parse(args); err != nil {
		return err
	}
	if username == "" {
		return usagef("%s needs --username", cmd)
	}
	if token == "" {
		return usagef("%s needs the node's admin token: TERN_ADMIN_TOKEN, TERN_ADMIN_TOKEN_FILE or --admin-token-file (or --admin-token, which ps shows)", cmd)
	}
	var password string
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		password, _, _ = strings.Cut(string(b), "\n")
		password = strings.TrimRight(password, "\r")
	} else {
		var err error
		if password, err = readPassword(stdin, stderr); err != nil {
			return err
		}
	}
	path, want, done := "/admin/v1/admins", http.StatusCreated, "created"
	if cmd == "reset" {
		path, want, done = "/admin/v1/admins/reset", http.StatusOK, "reset: its second factor is off and its sessions ended"
	}
	if _, err := postAdmin(ctx, addr, token, path, map[string]string{"username": username, "password": password}, want); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	fmt.Fprintf(stdout, "admin %s %s; sign in at /admin\n", strings.ToLower(username), done)
	return nil
}

// readPassword asks twice on a terminal (without echo), or reads one line
// from a pipe (scripts: echo "$PW" | tern admin create ...).
func readPassword(stdin *os.File, stderr io.Writer) (string, error) {
	fd := int(stdin.Fd())
	if !term.IsTerminal(fd) {
		line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	fmt.Fprint(stderr, "Password: ")
	a, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	fmt.Fprint(stderr, "Again: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if string(a) != string(b) {
		return "", errors.New("the passwords differ")
	}
	return string(a), nil
}

// postAdmin POSTs body as JSON to a running node's admin listener with
// its admin token, and returns the answer, which must have status want.
func postAdmin(ctx context.Context, addr, token, path string, body any, want int) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 8192))
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(out)))
	}
	return out, nil
}
