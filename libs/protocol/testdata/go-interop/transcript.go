package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"tailscale.com/control/controlbase"
	"tailscale.com/types/key"
)

// fixedReader hands out pre-chosen bytes: it replaces crypto/rand.Reader so that the ephemeral
// keys controlbase generates (key.NewMachine) are known and the transcript is deterministic.
type fixedReader struct {
	mu     sync.Mutex
	chunks [][]byte
}

func (r *fixedReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.chunks) == 0 {
		return 0, errors.New("fixedReader exhausted: unexpected randomness use")
	}
	c := r.chunks[0]
	if len(p) != len(c) {
		return 0, fmt.Errorf("fixedReader: read of %d bytes, have chunk of %d", len(p), len(c))
	}
	r.chunks = r.chunks[1:]
	return copy(p, c), nil
}

// recordingConn records every byte written to and read from a net.Conn.
type recordingConn struct {
	net.Conn
	mu      sync.Mutex
	written bytes.Buffer
	read    bytes.Buffer
}

func (c *recordingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	c.written.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.read.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

func clamped(seed byte) []byte {
	b := pattern(32, seed)
	b[0] &= 248
	b[31] = (b[31] & 127) | 64
	return b
}

func machinePrivate(raw []byte) (key.MachinePrivate, error) {
	var k key.MachinePrivate
	err := k.UnmarshalText([]byte("privkey:" + hex.EncodeToString(raw)))
	return k, err
}

type transcriptDirection struct {
	Plaintexts []string `json:"plaintexts"`
	Wire       string   `json:"wire"`
}

type transcript struct {
	Source                 string              `json:"source"`
	Version                uint16              `json:"version"`
	ClientStaticPrivate    string              `json:"clientStaticPrivate"`
	ClientStaticPublic     string              `json:"clientStaticPublic"`
	ServerStaticPrivate    string              `json:"serverStaticPrivate"`
	ServerStaticPublic     string              `json:"serverStaticPublic"`
	ClientEphemeralPrivate string              `json:"clientEphemeralPrivate"`
	ServerEphemeralPrivate string              `json:"serverEphemeralPrivate"`
	Initiation             string              `json:"initiation"`
	Response               string              `json:"response"`
	HandshakeHash          string              `json:"handshakeHash"`
	ClientToServer         transcriptDirection `json:"clientToServer"`
	ServerToClient         transcriptDirection `json:"serverToClient"`
}

func runTranscript() error {
	const version = 113
	clientStatic, err := machinePrivate(clamped(31))
	if err != nil {
		return err
	}
	serverStatic, err := machinePrivate(clamped(32))
	if err != nil {
		return err
	}
	clientEph, serverEph := clamped(33), clamped(34)
	crand.Reader = &fixedReader{chunks: [][]byte{clientEph, serverEph}}

	init, cont, err := controlbase.ClientDeferred(clientStatic, serverStatic.Public(), version)
	if err != nil {
		return err
	}
	c1, c2 := net.Pipe()
	srvRec := &recordingConn{Conn: c2}
	cliRec := &recordingConn{Conn: c1}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	type result struct {
		conn *controlbase.Conn
		err  error
	}
	srvCh := make(chan result, 1)
	go func() {
		c, err := controlbase.Server(ctx, srvRec, serverStatic, init)
		srvCh <- result{c, err}
	}()
	cli, err := cont(ctx, cliRec)
	if err != nil {
		return fmt.Errorf("client handshake: %w", err)
	}
	sr := <-srvCh
	if sr.err != nil {
		return fmt.Errorf("server handshake: %w", sr.err)
	}
	srv := sr.conn
	if cli.HandshakeHash() != srv.HandshakeHash() {
		return errors.New("handshake hashes differ")
	}
	response := append([]byte(nil), cliRec.read.Bytes()...)
	cliRec.read.Reset()
	srvRec.written.Reset()

	c2s := [][]byte{[]byte("hello from the client"), pattern(4077, 1), pattern(4078, 2), pattern(10, 3)}
	s2c := [][]byte{[]byte("hello from the server"), pattern(9000, 4), pattern(1, 5)}
	if err := exchange(cli, srv, c2s); err != nil {
		return err
	}
	if err := exchange(srv, cli, s2c); err != nil {
		return err
	}
	hh := cli.HandshakeHash()
	t := transcript{
		Source:                 "go-interop transcript: tailscale.com v1.80.3 controlbase.ClientDeferred + controlbase.Server over net.Pipe, ephemeral keys fixed via crypto/rand.Reader",
		Version:                version,
		ClientStaticPrivate:    must(clientStatic.MarshalText()),
		ClientStaticPublic:     must(clientStatic.Public().MarshalText()),
		ServerStaticPrivate:    must(serverStatic.MarshalText()),
		ServerStaticPublic:     must(serverStatic.Public().MarshalText()),
		ClientEphemeralPrivate: "privkey:" + hx(clientEph),
		ServerEphemeralPrivate: "privkey:" + hx(serverEph),
		Initiation:             hx(init),
		Response:               hx(response),
		HandshakeHash:          hx(hh[:]),
		ClientToServer:         transcriptDirection{hexAll(c2s), hx(cliRec.written.Bytes())},
		ServerToClient:         transcriptDirection{hexAll(s2c), hx(srvRec.written.Bytes())},
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}

// exchange writes each message on w (one Write call each) and reads it back whole on r.
func exchange(w, r net.Conn, msgs [][]byte) error {
	errCh := make(chan error, 1)
	go func() {
		for _, m := range msgs {
			if _, err := w.Write(m); err != nil {
				errCh <- err
				return
			}
		}
		errCh <- nil
	}()
	for i, m := range msgs {
		got := make([]byte, len(m))
		if _, err := io.ReadFull(r, got); err != nil {
			return fmt.Errorf("reading message %d: %w", i, err)
		}
		if !bytes.Equal(got, m) {
			return fmt.Errorf("message %d corrupted", i)
		}
	}
	return <-errCh
}

func hexAll(ms [][]byte) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = hx(m)
	}
	return out
}

func must(b []byte, err error) string {
	if err != nil {
		panic(err)
	}
	return string(b)
}
