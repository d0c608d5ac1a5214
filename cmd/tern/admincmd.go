package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

const adminHelp = `Usage: tern admin <command> [flags]

Asks a running node to do something through its admin API (its
--admin-addr, behind its --admin-token). Commands:

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
