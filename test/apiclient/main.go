// Command apiclient drives Switchboard's admin API v2 with Tailscale's own Go client
// (tailscale.com/client/tailscale/v2), for the interop test test/test/interop/api-v2-go-client.test.ts.
// Each subcommand does its calls and prints one JSON object; the test checks every effect through
// Switchboard's CLI.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	tailscale "tailscale.com/client/tailscale/v2"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: apiclient SUBCOMMAND [flags]"))
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	base := fs.String("base", "", "control server URL (the API is on its origin)")
	token := fs.String("token", "", "API access token")
	clientID := fs.String("client-id", "", "OAuth client id")
	clientSecret := fs.String("client-secret", "", "OAuth client secret")
	scopes := fs.String("scopes", "", "comma-separated scopes (OAuth token request, or a new client's)")
	tags := fs.String("tags", "", "comma-separated tags")
	routes := fs.String("routes", "", "comma-separated routes")
	id := fs.String("id", "", "device id")
	file := fs.String("file", "", "policy file to write")
	reusable := fs.Bool("reusable", false, "auth key: reusable")
	ephemeral := fs.Bool("ephemeral", false, "auth key: ephemeral")
	_ = fs.Parse(os.Args[2:])

	u, err := url.Parse(*base)
	if err != nil || *base == "" {
		fail(fmt.Errorf("-base: %v", err))
	}
	c := &tailscale.Client{BaseURL: u, Tailnet: "-"}
	if *clientID != "" || *clientSecret != "" {
		c.Auth = &tailscale.OAuth{ClientID: *clientID, ClientSecret: *clientSecret, Scopes: split(*scopes)}
	} else {
		c.APIKey = *token
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	switch cmd {
	case "create-auth-key":
		var caps tailscale.KeyCapabilities
		caps.Devices.Create.Reusable = *reusable
		caps.Devices.Create.Ephemeral = *ephemeral
		caps.Devices.Create.Preauthorized = true
		caps.Devices.Create.Tags = split(*tags)
		k, err := c.Keys().CreateAuthKey(ctx, tailscale.CreateKeyRequest{Capabilities: caps, ExpirySeconds: 3600, Description: "go client"})
		check(err)
		got, err := c.Keys().Get(ctx, k.ID)
		check(err)
		out(map[string]any{"key": k.Key, "id": k.ID, "get": got})
	case "create-oauth-client":
		k, err := c.Keys().CreateOAuthClient(ctx, tailscale.CreateOAuthClientRequest{Scopes: split(*scopes), Tags: split(*tags), Description: "go client"})
		check(err)
		out(map[string]any{"id": k.ID, "secret": k.Key, "keyType": k.KeyType})
	case "list-devices":
		all, err := c.Devices().ListWithAllFields(ctx)
		check(err)
		out(map[string]any{"devices": all})
	case "manage-device":
		// Tags, routes, authorization; then read everything back through the API.
		check(c.Devices().SetTags(ctx, *id, split(*tags)))
		check(c.Devices().SetSubnetRoutes(ctx, *id, split(*routes)))
		check(c.Devices().SetAuthorized(ctx, *id, false))
		off, err := c.Devices().Get(ctx, *id)
		check(err)
		check(c.Devices().SetAuthorized(ctx, *id, true))
		d, err := c.Devices().Get(ctx, *id)
		check(err)
		r, err := c.Devices().SubnetRoutes(ctx, *id)
		check(err)
		out(map[string]any{"device": d, "routes": r, "authorizedWhileOff": off.Authorized})
	case "policy":
		// Read (HuJSON + ETag), validate, write with If-Match, then a stale If-Match must be refused.
		raw, err := c.PolicyFile().Raw(ctx)
		check(err)
		text, err := os.ReadFile(*file)
		check(err)
		check(c.PolicyFile().Validate(ctx, string(text)))
		invalid := c.PolicyFile().Validate(ctx, `{"acls":[{"action":"accept","src":["nobody-group"],"dst":["*:*"]}]}`)
		check(c.PolicyFile().Set(ctx, string(text), raw.ETag))
		after, err := c.PolicyFile().Raw(ctx)
		check(err)
		stale := c.PolicyFile().Set(ctx, string(text)+"\n// again\n", raw.ETag)
		var apiErr tailscale.APIError
		staleStatus := 0
		if errors.As(stale, &apiErr) {
			staleStatus = apiErr.Status
		}
		out(map[string]any{
			"etagBefore":      raw.ETag,
			"etagAfter":       after.ETag,
			"hujsonAfter":     after.HuJSON,
			"invalidRejected": invalid != nil,
			"staleStatus":     staleStatus,
		})
	case "dns":
		// Nameservers, search paths, split DNS, MagicDNS on; read back.
		check(c.DNS().SetNameservers(ctx, split(*routes)))
		check(c.DNS().SetSearchPaths(ctx, []string{"corp.example"}))
		_, err := c.DNS().UpdateSplitDNS(ctx, tailscale.SplitDNSRequest{"corp.example": {"10.77.0.53"}})
		check(err)
		check(c.DNS().SetPreferences(ctx, tailscale.DNSPreferences{MagicDNS: true}))
		ns, err := c.DNS().Nameservers(ctx)
		check(err)
		sp, err := c.DNS().SearchPaths(ctx)
		check(err)
		sd, err := c.DNS().SplitDNS(ctx)
		check(err)
		out(map[string]any{"nameservers": ns, "searchPaths": sp, "splitDNS": sd})
	case "forbidden-probe":
		// Something the credential may not do: the APIError's status is printed.
		err := c.PolicyFile().Set(ctx, `{"acls":[]}`, "")
		var apiErr tailscale.APIError
		status := 0
		if errors.As(err, &apiErr) {
			status = apiErr.Status
		}
		out(map[string]any{"status": status, "error": fmt.Sprint(err)})
	default:
		fail(fmt.Errorf("unknown subcommand %q", cmd))
	}
}

func split(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

func check(err error) {
	if err != nil {
		fail(err)
	}
}

func out(v any) {
	b, err := json.Marshal(v)
	check(err)
	fmt.Println(string(b))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "apiclient:", err)
	os.Exit(1)
}
