package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/net/http2"
	"tailscale.com/control/controlhttp/controlhttpserver"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

func runServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	privText := fs.String("key", "", "server Noise private key (privkey:)")
	rawPeerText := fs.String("raw-peer", "", "machine key (mkey:) that gets the raw Noise exchange instead of HTTP/2")
	early := fs.Bool("early", true, "send an early payload with a node-key challenge")
	lifetime := fs.Duration("lifetime", 2*time.Minute, "exit after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var priv key.MachinePrivate
	if err := priv.UnmarshalText([]byte(*privText)); err != nil {
		return fmt.Errorf("-key: %w", err)
	}
	var rawPeer key.MachinePublic
	if err := rawPeer.UnmarshalText([]byte(*rawPeerText)); err != nil {
		return fmt.Errorf("-raw-peer: %w", err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/key", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(tailcfg.OverTLSPublicKeyResponse{PublicKey: priv.Public()})
	})
	mux.HandleFunc("/ts2021", func(w http.ResponseWriter, r *http.Request) {
		var earlyWrite func(int, io.Writer) error
		if *early {
			earlyWrite = func(_ int, w io.Writer) error {
				payload, err := json.Marshal(tailcfg.EarlyNoise{NodeKeyChallenge: key.NewChallenge().Public()})
				if err != nil {
					return err
				}
				hdr := make([]byte, 9, 9+len(payload))
				copy(hdr, earlyMagic)
				binary.BigEndian.PutUint32(hdr[5:], uint32(len(payload)))
				_, err = w.Write(append(hdr, payload...))
				return err
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		nc, err := controlhttpserver.AcceptHTTP(ctx, w, r, priv, earlyWrite)
		cancel()
		if err != nil {
			log.Printf("ts2021: %v", err)
			return
		}
		defer nc.Close()
		if nc.Peer() == rawPeer {
			if err := rawServer(nc); err != nil && !errors.Is(err, io.EOF) {
				log.Printf("raw exchange: %v", err)
			}
			return
		}
		h2 := &http2.Server{}
		h2.ServeConn(nc, &http2.ServeConnOpts{
			Context:    context.Background(),
			BaseConfig: &http.Server{},
			Handler:    noiseHandler(nc.Peer(), nc.ProtocolVersion(), enc),
		})
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("LISTENING %s\n", ln.Addr())
	go func() {
		time.Sleep(*lifetime)
		fmt.Fprintln(os.Stderr, "go-interop server: lifetime over")
		os.Exit(3)
	}()
	go func() {
		// Exit when the parent closes our stdin.
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	return http.Serve(ln, mux)
}

func noiseHandler(peer key.MachinePublic, version int, enc *zstd.Encoder) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if len(body) > 1<<20 {
			http.Error(w, "request body exceeds 1048576 bytes", http.StatusRequestEntityTooLarge)
			return
		}
		w.Header().Set("X-Machine-Key", peer.String())
		w.Header().Set("X-Capver", strconv.Itoa(version))
		fmt.Fprintf(w, "%s %d", sha256Hex(body), len(body))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write(pattern(n, 99))
	})
	mux.HandleFunc("/machine/register", func(w http.ResponseWriter, r *http.Request) {
		var req tailcfg.RegisterRequest
		if err := strictDecode(r.Body, &req); err != nil {
			http.Error(w, "register: "+err.Error(), 400)
			return
		}
		if req.NodeKey.IsZero() || req.Hostinfo == nil {
			http.Error(w, "register: NodeKey and Hostinfo required", 400)
			return
		}
		resp := tailcfg.RegisterResponse{
			User:              tailcfg.User{ID: 1, DisplayName: req.Hostinfo.Hostname},
			Login:             tailcfg.Login{ID: 1, LoginName: req.NodeKey.String(), DisplayName: req.Hostinfo.Hostname},
			MachineAuthorized: true,
		}
		if req.Auth == nil || req.Auth.AuthKey == "" {
			resp = tailcfg.RegisterResponse{Error: "no credentials"}
		} else {
			resp.Login.Provider = "authkey:" + req.Auth.AuthKey
		}
		json.NewEncoder(w).Encode(resp)
	})
	mux.HandleFunc("/machine/map", func(w http.ResponseWriter, r *http.Request) {
		var req tailcfg.MapRequest
		if err := strictDecode(r.Body, &req); err != nil {
			http.Error(w, "map: "+err.Error(), 400)
			return
		}
		if req.Compress != "zstd" || req.NodeKey.IsZero() || int(req.Version) != version {
			http.Error(w, "map: bad request fields", 400)
			return
		}
		frames := buildMapFrames(&req, peer)
		if !req.Stream {
			// Lite update (OmitPeers): empty body. One-shot map: exactly one full frame.
			if !req.OmitPeers {
				frames = frames[1:2]
			} else {
				frames = nil
			}
		}
		w.WriteHeader(200)
		f := w.(http.Flusher)
		f.Flush()
		for _, m := range frames {
			js, err := json.Marshal(m)
			if err != nil {
				log.Printf("map: %v", err)
				return
			}
			z := enc.EncodeAll(js, nil)
			var hdr [4]byte
			binary.LittleEndian.PutUint32(hdr[:], uint32(len(z)))
			w.Write(hdr[:])
			w.Write(z)
			f.Flush()
		}
	})
	return mux
}

func strictDecode(r io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
