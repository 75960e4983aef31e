// Command legacy-vectors writes legacy-box-vectors.json: NaCl boxes sealed the way tailscale's
// key.MachinePrivate.SealTo (v1.62.1) seals them, box.Seal(nonce[:], msg, &nonce, peer, priv),
// so the TypeScript side can be checked byte for byte. Run: go run . > ../legacy-box-vectors.json
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
)

type vector struct {
	Name          string `json:"name"`
	ClientPrivate string `json:"clientPrivate"`
	ClientPublic  string `json:"clientPublic"`
	ServerPrivate string `json:"serverPrivate"`
	ServerPublic  string `json:"serverPublic"`
	Nonce         string `json:"nonce"`
	Cleartext     string `json:"cleartext"`
	// SealedByClient is client SealTo server; SealedByServer is server SealTo client.
	SealedByClient string `json:"sealedByClient"`
	SealedByServer string `json:"sealedByServer"`
}

func key(seed string) (priv, pub [32]byte) {
	priv = sha256.Sum256([]byte(seed))
	p, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		panic(err)
	}
	copy(pub[:], p)
	return
}

func main() {
	cPriv, cPub := key("client machine key")
	sPriv, sPub := key("server legacy key")
	msgs := []struct{ name, text string }{
		{"empty", ""},
		{"register-request", `{"Version":1,"NodeKey":"nodekey:0000000000000000000000000000000000000000000000000000000000000001","Auth":{"AuthKey":"sbkey-test"}}`},
		{"keep-alive-zstd", "\x28\xb5\x2f\xfd\x00\x58\x91\x00\x00{\"KeepAlive\":true}"},
	}
	var out []vector
	for i, m := range msgs {
		var nonce [24]byte
		for j := range nonce {
			nonce[j] = byte(i*31 + j)
		}
		out = append(out, vector{
			Name: m.name, ClientPrivate: hex.EncodeToString(cPriv[:]), ClientPublic: hex.EncodeToString(cPub[:]),
			ServerPrivate: hex.EncodeToString(sPriv[:]), ServerPublic: hex.EncodeToString(sPub[:]),
			Nonce: hex.EncodeToString(nonce[:]), Cleartext: hex.EncodeToString([]byte(m.text)),
			SealedByClient: hex.EncodeToString(box.Seal(nonce[:], []byte(m.text), &nonce, &sPub, &cPriv)),
			SealedByServer: hex.EncodeToString(box.Seal(nonce[:], []byte(m.text), &nonce, &cPub, &sPriv)),
		})
	}
	e := json.NewEncoder(os.Stdout)
	e.SetIndent("", "  ")
	if err := e.Encode(out); err != nil {
		panic(err)
	}
}
