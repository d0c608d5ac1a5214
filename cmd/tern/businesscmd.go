package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

const businessHelp = `Usage: tern business <command> [flags]

Asks a running node to do something through its admin listener (its
--admin-addr, behind its --admin-token). Commands:

  create   make a business account from a phone number nobody uses yet:
           --phone +E164 --name N [--webhook-url URL --verify-token T]
           (the URL must answer the Cloud API's verification GET first).
           Prints one JSON object {phone_number_id, waba_id, access_token,
           app_secret}: the token and the secret are shown this once.
`

// businessCmd runs a business command against a running node.
func businessCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprint(stderr, businessHelp)
			return errUsage
		}
		return &helpRequest{text: businessHelp}
	}
	if args[0] != "create" {
		return usagef("unknown business command %q (see tern business --help)", args[0])
	}
	var addr, token, phone, name, webhook, verify string
	fs := newFlagSet("tern business create", "TERN_")
	fs.SetOutput(stderr)
	fs.String(&addr, "admin-addr", "127.0.0.1:9090", "admin address of a running node (its --admin-addr)")
	fs.String(&token, "admin-token", "", "the node's --admin-token")
	fs.secret("admin-token")
	fs.String(&phone, "phone", "", "the business's phone number, +E164")
	fs.String(&name, "name", "", "the business's display name")
	fs.String(&webhook, "webhook-url", "", "where the business's webhooks go (optional)")
	fs.String(&verify, "verify-token", "", "the verify token the webhook URL checks (with --webhook-url)")
	if err := fs.parse(args[1:]); err != nil {
		return err
	}
	if phone == "" || name == "" {
		return usagef("create needs --phone and --name")
	}
	if token == "" {
		return usagef("create needs the node's admin token: TERN_ADMIN_TOKEN, TERN_ADMIN_TOKEN_FILE or --admin-token-file (or --admin-token, which ps shows)")
	}
	out, err := postAdmin(ctx, addr, token, "/admin/v1/businesses",
		map[string]string{"phone": phone, "name": name, "webhook_url": webhook, "verify_token": verify}, http.StatusCreated)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	// Exactly the four fields scripts configure an SDK with.
	var created struct {
		PhoneNumberID string `json:"phone_number_id"`
		WABAID        string `json:"waba_id"`
		AccessToken   string `json:"access_token"`
		AppSecret     string `json:"app_secret"`
	}
	if err := json.Unmarshal(out, &created); err != nil {
		return fmt.Errorf("create: the node's answer: %w", err)
	}
	b, err := json.Marshal(created)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}
