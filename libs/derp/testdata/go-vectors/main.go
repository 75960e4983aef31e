package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
	"tailscale.com/derp"
	"tailscale.com/net/stun"
	"tailscale.com/types/key"
)

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func main() {
	var clientPriv, serverPriv [32]byte
	copy(clientPriv[:], seq(32, 1))
	copy(serverPriv[:], seq(32, 0x41))
	clientPub, _ := curve25519.X25519(clientPriv[:], curve25519.Basepoint)
	serverPub, _ := curve25519.X25519(serverPriv[:], curve25519.Basepoint)
	var cp, sp [32]byte
	copy(cp[:], clientPub)
	copy(sp[:], serverPub)
	var nonce [24]byte
	copy(nonce[:], seq(24, 0x90))

	mk, _ := key.ParseDERPMesh("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	ciJSON, _ := json.Marshal(derp.ClientInfo{Version: derp.ProtocolVersion, CanAckPings: true})
	ciMeshJSON, _ := json.Marshal(derp.ClientInfo{Version: derp.ProtocolVersion, MeshKey: mk, CanAckPings: true, IsProber: true, AppName: "bench"})
	siJSON, _ := json.Marshal(derp.ServerInfo{Version: derp.ProtocolVersion})
	ciBox := box.Seal(nonce[:], ciJSON, &nonce, &sp, &clientPriv)
	siBox := box.Seal(nonce[:], siJSON, &nonce, &cp, &serverPriv)

	var tx stun.TxID
	copy(tx[:], seq(12, 0xa0))
	req := stun.Request(tx)
	resp4 := stun.Response(tx, netip.MustParseAddrPort("198.51.100.7:41641"))
	resp6 := stun.Response(tx, netip.MustParseAddrPort("[2001:db8::1234]:3478"))

	out := map[string]any{
		"source":             "generated with tailscale.com@v1.104.5 (derp, net/stun) and golang.org/x/crypto/nacl/box",
		"magic":              hex.EncodeToString([]byte(derp.Magic)),
		"protocolVersion":    derp.ProtocolVersion,
		"clientPrivate":      hex.EncodeToString(clientPriv[:]),
		"clientPublic":       hex.EncodeToString(clientPub),
		"serverPrivate":      hex.EncodeToString(serverPriv[:]),
		"serverPublic":       hex.EncodeToString(serverPub),
		"nonce":              hex.EncodeToString(nonce[:]),
		"clientInfoJson":     string(ciJSON),
		"clientInfoMeshJson": string(ciMeshJSON),
		"serverInfoJson":     string(siJSON),
		"clientInfoBox":      hex.EncodeToString(ciBox),
		"serverInfoBox":      hex.EncodeToString(siBox),
		"stunTxId":           hex.EncodeToString(tx[:]),
		"stunRequest":        hex.EncodeToString(req),
		"stunResponse4":      hex.EncodeToString(resp4),
		"stunResponse6":      hex.EncodeToString(resp6),
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
}
