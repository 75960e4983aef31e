package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/types/opt"
)

type messageSamples struct {
	Source          string          `json:"source"`
	Register        json.RawMessage `json:"register"`
	RegisterRotate  json.RawMessage `json:"registerRotate"`
	RegisterLogout  json.RawMessage `json:"registerLogout"`
	RegisterPre166  json.RawMessage `json:"registerPre166"`
	MapStream       json.RawMessage `json:"mapStream"`
	MapLite         json.RawMessage `json:"mapLite"`
	OverTLSKey      json.RawMessage `json:"overTLSPublicKeyResponse"`
	EarlyNoise      json.RawMessage `json:"earlyNoise"`
	FullMapResponse json.RawMessage `json:"fullMapResponse"`
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// runMessages prints sample messages exactly as Go's encoding/json writes the tailcfg types of
// tailscale v1.80.3, for the TypeScript schema tests.
func runMessages() error {
	nodeKey := nodePub('n', 1)
	oldKey := nodePub('n', 0)
	nl := key.NLPublicFromEd25519Unsafe(rawKeyBytes('l', 1))
	hi := sampleHostinfo()
	hi.Container = opt.NewBool(false)
	reg := tailcfg.RegisterRequest{
		Version:  113,
		NodeKey:  nodeKey,
		NLKey:    nl,
		Auth:     &tailcfg.RegisterResponseAuth{AuthKey: "tskey-auth-k123"},
		Hostinfo: hi,
	}
	rotate := reg
	rotate.OldNodeKey = oldKey
	rotate.Auth = nil
	rotate.Followup = "https://control.example.com/register/abc"
	logout := reg
	logout.Auth = nil
	logout.Expiry = time.Unix(123, 0).UTC()
	ts := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	logout.Timestamp = &ts

	mr := tailcfg.MapRequest{
		Version:       113,
		Compress:      "zstd",
		KeepAlive:     true,
		NodeKey:       nodeKey,
		DiscoKey:      key.DiscoPublicFromRaw32(memB(rawKeyBytes('d', 1))),
		Stream:        true,
		Hostinfo:      hi,
		Endpoints:     []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:41641"), netip.MustParseAddrPort("[2001:db8::1]:41641")},
		EndpointTypes: []tailcfg.EndpointType{tailcfg.EndpointLocal, tailcfg.EndpointSTUN},
	}
	lite := mr
	lite.Stream, lite.OmitPeers = false, true
	lite.DebugFlags = []string{"warn-ip-forwarding-off"}

	var chal key.ChallengePublic
	if err := chal.UnmarshalText([]byte("chalpub:" + hx(rawKeyBytes('c', 1)))); err != nil {
		return err
	}
	frames := buildMapFrames(&mr, key.MachinePublicFromRaw32(memB(rawKeyBytes('m', 1))))
	s := messageSamples{
		Source:         "go-interop messages: encoding/json of tailscale.com v1.80.3 tailcfg types",
		Register:       mustJSON(reg),
		RegisterRotate: mustJSON(rotate),
		RegisterLogout: mustJSON(logout),
		// Clients before v1.66 always send an Auth object, all members empty without credentials.
		RegisterPre166:  json.RawMessage(`{"Version":87,"NodeKey":"` + nodeKey.String() + `","OldNodeKey":"nodekey:0000000000000000000000000000000000000000000000000000000000000000","NLKey":"nlpub:0000000000000000000000000000000000000000000000000000000000000000","Auth":{"Provider":"","LoginName":"","Oauth2Token":null,"AuthKey":""},"Expiry":"0001-01-01T00:00:00Z","Followup":"","Hostinfo":{"IPNVersion":"1.60.0","BackendLogID":"x","OS":"linux","Hostname":"old"},"Ephemeral":false,"NodeKeySignature":null}`),
		MapStream:       mustJSON(mr),
		MapLite:         mustJSON(lite),
		OverTLSKey:      mustJSON(tailcfg.OverTLSPublicKeyResponse{PublicKey: key.MachinePublicFromRaw32(memB(rawKeyBytes('s', 1)))}),
		EarlyNoise:      mustJSON(tailcfg.EarlyNoise{NodeKeyChallenge: chal}),
		FullMapResponse: mustJSON(frames[1]),
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}
