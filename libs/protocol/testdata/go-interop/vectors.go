package main

import (
	"bytes"
	"crypto/hmac"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
)

// pattern returns n deterministic bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

type hashVector struct {
	Input  string `json:"input"`
	Output string `json:"output"`
}

type hmacVector struct {
	Key    string `json:"key"`
	Input  string `json:"input"`
	Output string `json:"output"`
}

type hkdfVector struct {
	ChainingKey string `json:"chainingKey"`
	Ikm         string `json:"ikm"`
	Out1        string `json:"out1"`
	Out2        string `json:"out2"`
}

type aeadVector struct {
	Key        string `json:"key"`
	Counter    uint64 `json:"counter"`
	Nonce      string `json:"nonce"`
	Plaintext  string `json:"plaintext"`
	Ad         string `json:"ad"`
	Ciphertext string `json:"ciphertext"`
}

type x25519Vector struct {
	Private string `json:"private"`
	Public  string `json:"public"`
	Peer    string `json:"peer"`
	Shared  string `json:"shared"`
}

type zstdVector struct {
	Name       string `json:"name"`
	Plaintext  string `json:"plaintext"`
	Compressed string `json:"compressed"`
}

type vectors struct {
	Source  string         `json:"source"`
	Blake2s []hashVector   `json:"blake2s"`
	Hmac    []hmacVector   `json:"hmacBlake2s"`
	Hkdf    []hkdfVector   `json:"hkdf"`
	Aead    []aeadVector   `json:"chacha20poly1305"`
	X25519  []x25519Vector `json:"x25519"`
	Zstd    []zstdVector   `json:"zstd"`
}

func hx(b []byte) string { return hex.EncodeToString(b) }

func newBlake2s() hash.Hash {
	h, err := blake2s.New256(nil)
	if err != nil {
		panic(err)
	}
	return h
}

func runVectors() error {
	v := vectors{Source: "go-interop vectors (golang.org/x/crypto v0.33.0, as used by tailscale.com v1.80.3 controlbase)"}
	for _, in := range [][]byte{nil, []byte("abc"), pattern(100, 1)} {
		sum := blake2s.Sum256(in)
		v.Blake2s = append(v.Blake2s, hashVector{hx(in), hx(sum[:])})
	}
	for _, kv := range []struct{ k, in []byte }{{pattern(32, 3), []byte("hello")}, {pattern(80, 9), pattern(200, 4)}, {nil, nil}} {
		m := hmac.New(newBlake2s, kv.k)
		m.Write(kv.in)
		v.Hmac = append(v.Hmac, hmacVector{hx(kv.k), hx(kv.in), hx(m.Sum(nil))})
	}
	for _, kv := range []struct{ ck, ikm []byte }{{pattern(32, 5), pattern(32, 6)}, {pattern(32, 7), nil}} {
		r := hkdf.New(newBlake2s, kv.ikm, kv.ck, nil)
		out := make([]byte, 64)
		if _, err := io.ReadFull(r, out); err != nil {
			return err
		}
		v.Hkdf = append(v.Hkdf, hkdfVector{hx(kv.ck), hx(kv.ikm), hx(out[:32]), hx(out[32:])})
	}
	key := pattern(32, 11)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return err
	}
	for _, c := range []uint64{0, 1, 2, 255, 256, 1 << 32, 1<<40 + 3} {
		var nonce [12]byte
		binary.BigEndian.PutUint64(nonce[4:], c)
		pt := pattern(int(c%50)+10, byte(c))
		var ad []byte
		if c == 2 {
			ad = []byte("associated")
		}
		ct := aead.Seal(nil, nonce[:], pt, ad)
		v.Aead = append(v.Aead, aeadVector{hx(key), c, hx(nonce[:]), hx(pt), hx(ad), hx(ct)})
	}
	for _, seed := range []byte{21, 22} {
		priv := pattern(32, seed)
		pub, _ := curve25519.X25519(priv, curve25519.Basepoint)
		peerPriv := pattern(32, seed+100)
		peer, _ := curve25519.X25519(peerPriv, curve25519.Basepoint)
		shared, err := curve25519.X25519(priv, peer)
		if err != nil {
			return err
		}
		v.X25519 = append(v.X25519, x25519Vector{hx(priv), hx(pub), hx(peer), hx(shared)})
	}
	if err := zstdVectors(&v); err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// zstdVectors compresses a MapResponse-like JSON with klauspost/compress (what tailscale uses),
// in the shapes a decoder must handle: EncodeAll (content size declared), a streaming writer (no
// content size), and two concatenated frames.
func zstdVectors(v *vectors) error {
	var sb strings.Builder
	sb.WriteString(`{"Peers":[`)
	for i := 0; i < 200; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"ID":%d,"Name":"peer-%d.example.ts.net.","Addresses":["100.64.%d.%d/32"]}`, i+2, i+2, (i+2)>>8, (i+2)&255)
	}
	sb.WriteString(`]}`)
	plain := []byte(sb.String())

	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return err
	}
	all := enc.EncodeAll(plain, nil)
	v.Zstd = append(v.Zstd, zstdVector{"encodeAll", hx(plain), hx(all)})

	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(true))
	if err != nil {
		return err
	}
	if _, err := w.Write(plain); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	v.Zstd = append(v.Zstd, zstdVector{"stream", hx(plain), hx(buf.Bytes())})

	a, b := plain[:len(plain)/2], plain[len(plain)/2:]
	two := enc.EncodeAll(b, enc.EncodeAll(a, nil))
	v.Zstd = append(v.Zstd, zstdVector{"twoFrames", hx(plain), hx(two)})

	ka := enc.EncodeAll([]byte(`{"KeepAlive":true}`), nil)
	v.Zstd = append(v.Zstd, zstdVector{"keepAlive", hx([]byte(`{"KeepAlive":true}`)), hx(ka)})
	return nil
}
