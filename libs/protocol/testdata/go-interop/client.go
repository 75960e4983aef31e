package main

import (
	"bufio"
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
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/net/http2"
	"tailscale.com/control/controlhttp"
	"tailscale.com/health"
	"tailscale.com/net/netmon"
	"tailscale.com/tailcfg"
	"tailscale.com/tstime"
	"tailscale.com/types/key"
)

// earlyConn strips the optional early payload from the start of a Noise connection, exactly as
// tailscale's internal/noiseconn.Conn does (which cannot be imported from outside the module).
type earlyConn struct {
	net.Conn
	once   sync.Once
	reader io.Reader
	early  *tailcfg.EarlyNoise
	err    error
	ready  chan struct{}
}

const earlyMagic = "\xff\xff\xffTS"

func newEarlyConn(c net.Conn) *earlyConn { return &earlyConn{Conn: c, ready: make(chan struct{})} }

func (c *earlyConn) readHeader() {
	defer close(c.ready)
	var hdr [9]byte
	if _, err := io.ReadFull(c.Conn, hdr[:]); err != nil {
		c.err = err
		return
	}
	if string(hdr[:5]) != earlyMagic {
		c.reader = io.MultiReader(bytes.NewReader(hdr[:]), c.Conn)
		return
	}
	n := binary.BigEndian.Uint32(hdr[5:])
	if n > 10<<20 {
		c.err = errors.New("invalid early payload length")
		return
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c.Conn, buf); err != nil {
		c.err = err
		return
	}
	if err := json.Unmarshal(buf, &c.early); err != nil {
		c.err = err
		return
	}
	c.reader = c.Conn
}

func (c *earlyConn) Read(p []byte) (int, error) {
	c.once.Do(c.readHeader)
	if c.err != nil {
		return 0, c.err
	}
	return c.reader.Read(p)
}

type clientFlags struct {
	base      *url.URL
	serverKey key.MachinePublic
	rawKey    key.MachinePrivate
	h2Key     key.MachinePrivate
	version   int
	early     string
	httpsPort string
}

func runClient(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	rawURL := fs.String("url", "", "server base URL, http://127.0.0.1:PORT")
	serverKey := fs.String("server-key", "", "expected server Noise key (mkey:)")
	rawKey := fs.String("raw-key", "", "machine private key for the raw Noise exchange (privkey:)")
	h2Key := fs.String("h2-key", "", "machine private key for the HTTP/2 exchange (privkey:)")
	version := fs.Int("version", 113, "capability version to announce")
	early := fs.String("early", "any", "early payload expected: yes, no or any")
	httpsPort := fs.String("https-port", controlhttp.NoPort, "HTTPS fallback port; with the default (none) controlhttp "+
		"does not report a failed plain-HTTP attempt until its context deadline")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var f clientFlags
	var err error
	if f.base, err = url.Parse(*rawURL); err != nil {
		return err
	}
	if err := f.serverKey.UnmarshalText([]byte(*serverKey)); err != nil {
		return fmt.Errorf("-server-key: %w", err)
	}
	if err := f.rawKey.UnmarshalText([]byte(*rawKey)); err != nil {
		return fmt.Errorf("-raw-key: %w", err)
	}
	if err := f.h2Key.UnmarshalText([]byte(*h2Key)); err != nil {
		return fmt.Errorf("-h2-key: %w", err)
	}
	f.version, f.early, f.httpsPort = *version, *early, *httpsPort

	if err := checkKeyEndpoint(f); err != nil {
		return fmt.Errorf("/key: %w", err)
	}
	fmt.Println("OK key endpoint")

	rc, err := dialNoise(f, f.rawKey)
	if err != nil {
		return fmt.Errorf("raw dial: %w", err)
	}
	if err := rawClient(rc); err != nil {
		return fmt.Errorf("raw exchange: %w", err)
	}
	rc.Close()
	fmt.Println("OK raw noise exchange")

	// Two HTTP/2 connections with the same machine key, used at the same time.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = h2Session(f, i)
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Println("OK http2 sessions")
	return nil
}

func checkKeyEndpoint(f clientFlags) error {
	resp, err := http.Get(f.base.String() + "/key?v=" + strconv.Itoa(f.version))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %s", resp.Status)
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, 64<<10))
	dec.DisallowUnknownFields()
	var k tailcfg.OverTLSPublicKeyResponse
	if err := dec.Decode(&k); err != nil {
		return err
	}
	if k.PublicKey != f.serverKey {
		return fmt.Errorf("publicKey %v, want %v", k.PublicKey, f.serverKey)
	}
	if !k.LegacyPublicKey.IsZero() {
		return errors.New("legacyPublicKey should be zero")
	}
	return nil
}

func dialNoise(f clientFlags, mk key.MachinePrivate) (*earlyConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := &controlhttp.Dialer{
		Hostname:        f.base.Hostname(),
		HTTPPort:        f.base.Port(),
		HTTPSPort:       f.httpsPort,
		MachineKey:      mk,
		ControlKey:      f.serverKey,
		ProtocolVersion: uint16(f.version),
		Dialer:          (&net.Dialer{}).DialContext,
		NetMon:          netmon.NewStatic(),
		HealthTracker:   new(health.Tracker),
		Logf:            log.Printf,
		Clock:           tstime.StdClock{},
	}
	cc, err := d.Dial(ctx)
	if err != nil {
		return nil, err
	}
	if cc.Peer() != f.serverKey {
		return nil, errors.New("controlbase peer is not the server key")
	}
	ec := newEarlyConn(cc.Conn)
	return ec, nil
}

func checkEarly(f clientFlags, ec *earlyConn) error {
	<-ec.ready
	if ec.err != nil {
		return fmt.Errorf("early payload: %w", ec.err)
	}
	switch f.early {
	case "yes":
		if ec.early == nil || ec.early.NodeKeyChallenge.IsZero() {
			return errors.New("expected an early payload with a challenge key")
		}
	case "no":
		if ec.early != nil {
			return errors.New("did not expect an early payload")
		}
	}
	return nil
}

// h2Session runs x/net/http2's client on one Noise connection, as tailscale 1.80 does.
func h2Session(f clientFlags, idx int) error {
	ec, err := dialNoise(f, f.h2Key)
	if err != nil {
		return fmt.Errorf("h2 dial %d: %w", idx, err)
	}
	defer ec.Close()
	tr := &http2.Transport{}
	cc, err := tr.NewClientConn(ec)
	if err != nil {
		return err
	}
	defer cc.Close()
	host := "https://" + f.base.Host

	do := func(method, path string, body []byte) (*http.Response, []byte, error) {
		req, err := http.NewRequest(method, host+path, bytes.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		resp, err := cc.RoundTrip(req)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	run := func(fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil {
				fail(err)
			}
		}()
	}

	nodeKey := nodePub('s', 1000+idx)
	for _, n := range []int{0, 1, 4077, 10 * 1024, 64 * 1024, 300 * 1024} {
		n := n
		run(func() error {
			body := pattern(n, byte(n))
			resp, b, err := do("POST", "/echo", body)
			if err != nil {
				return err
			}
			if resp.StatusCode != 200 {
				return fmt.Errorf("/echo %d: status %d: %s", n, resp.StatusCode, b)
			}
			if want := fmt.Sprintf("%s %d", sha256Hex(body), n); string(b) != want {
				return fmt.Errorf("/echo %d: got %q want %q", n, b, want)
			}
			if got := resp.Header.Get("X-Machine-Key"); got != f.h2Key.Public().String() {
				return fmt.Errorf("/echo: server saw machine key %s, want %s", got, f.h2Key.Public())
			}
			if got := resp.Header.Get("X-Capver"); got != strconv.Itoa(f.version) {
				return fmt.Errorf("/echo: server saw capver %s", got)
			}
			return nil
		})
	}
	run(func() error {
		resp, b, err := do("POST", "/big?n=500000", nil)
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || len(b) != 500000 || !bytes.Equal(b, pattern(500000, 99)) {
			return fmt.Errorf("/big: status %d, %d bytes", resp.StatusCode, len(b))
		}
		return nil
	})
	run(func() error { return checkRegister(do, nodeKey, f) })
	run(func() error { return checkMap(cc, host, nodeKey, f) })
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := checkEarly(f, ec); err != nil {
		return err
	}

	// A body over the 1 MiB limit must get 413 with a message.
	resp, b, err := do("POST", "/echo", make([]byte, 1<<20+1))
	if err != nil {
		return err
	}
	if resp.StatusCode != 413 || !strings.Contains(string(b), "1048576") {
		return fmt.Errorf("oversized body: status %d body %q", resp.StatusCode, b)
	}
	return nil
}

type doFunc func(method, path string, body []byte) (*http.Response, []byte, error)

func sampleHostinfo() *tailcfg.Hostinfo {
	return &tailcfg.Hostinfo{
		IPNVersion:   "1.80.3-go-interop",
		BackendLogID: "0123456789abcdef",
		OS:           "linux",
		Hostname:     "go-client",
		RoutableIPs:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")},
		RequestTags:  []string{"tag:test"},
		Services:     []tailcfg.Service{{Proto: tailcfg.PeerAPI4, Port: 12345}},
		NetInfo:      &tailcfg.NetInfo{PreferredDERP: 900, DERPLatency: map[string]float64{"900-v4": 0.01}},
	}
}

func checkRegister(do doFunc, nodeKey key.NodePublic, f clientFlags) error {
	nl := key.NewNLPrivate()
	withKey := tailcfg.RegisterRequest{
		Version:  tailcfg.CapabilityVersion(f.version),
		NodeKey:  nodeKey,
		NLKey:    nl.Public(),
		Auth:     &tailcfg.RegisterResponseAuth{AuthKey: "tskey-auth-test"},
		Hostinfo: sampleHostinfo(),
	}
	var rr tailcfg.RegisterResponse
	if err := postJSON(do, "/machine/register", withKey, &rr); err != nil {
		return err
	}
	if rr.Error != "" || !rr.MachineAuthorized || rr.User.DisplayName != "go-client" ||
		rr.Login.LoginName != nodeKey.String() || rr.Login.Provider != "authkey:tskey-auth-test" {
		return fmt.Errorf("register response wrong: %+v", rr)
	}
	// A pre-1.66 client sends an Auth object whose members are all empty: no credentials.
	noCreds := withKey
	noCreds.Auth = &tailcfg.RegisterResponseAuth{}
	rr = tailcfg.RegisterResponse{}
	if err := postJSON(do, "/machine/register", noCreds, &rr); err != nil {
		return err
	}
	if rr.Error != "no credentials" {
		return fmt.Errorf("register without credentials: Error = %q", rr.Error)
	}
	return nil
}

func postJSON(do doFunc, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	resp, b, err := do("POST", path, body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: status %d: %s", path, resp.StatusCode, b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s: decoding %s: %w", path, b, err)
	}
	return nil
}

func checkMap(cc *http2.ClientConn, host string, nodeKey key.NodePublic, f clientFlags) error {
	disco := key.NewDisco().Public()
	mr := tailcfg.MapRequest{
		Version:       tailcfg.CapabilityVersion(f.version),
		Compress:      "zstd",
		KeepAlive:     true,
		NodeKey:       nodeKey,
		DiscoKey:      disco,
		Stream:        true,
		Hostinfo:      sampleHostinfo(),
		Endpoints:     []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:41641"), netip.MustParseAddrPort("[2001:db8::1]:41641")},
		EndpointTypes: []tailcfg.EndpointType{tailcfg.EndpointLocal, tailcfg.EndpointSTUN},
	}
	body, _ := json.Marshal(mr)
	req, _ := http.NewRequest("POST", host+"/machine/map", bytes.NewReader(body))
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("/machine/map: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("/machine/map: status %d: %s", resp.StatusCode, b)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		return err
	}
	defer dec.Close()
	br := bufio.NewReader(resp.Body)
	var msgs []*tailcfg.MapResponse
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF {
				break
			}
			return fmt.Errorf("map frame header: %w", err)
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		z := make([]byte, n)
		if _, err := io.ReadFull(br, z); err != nil {
			return fmt.Errorf("map frame body: %w", err)
		}
		js, err := dec.DecodeAll(z, nil)
		if err != nil {
			return fmt.Errorf("map frame zstd: %w", err)
		}
		jd := json.NewDecoder(bytes.NewReader(js))
		jd.DisallowUnknownFields()
		var m tailcfg.MapResponse
		if err := jd.Decode(&m); err != nil {
			return fmt.Errorf("map frame json: %w: %.300s", err, js)
		}
		msgs = append(msgs, &m)
	}
	if err := checkMapStream(msgs, nodeKey.String()); err != nil {
		return err
	}
	if self := msgs[1].Node; self.Machine != f.h2Key.Public() || self.DiscoKey != disco {
		return errors.New("self node Machine/DiscoKey do not match the request")
	}

	// A lite update: Stream false, OmitPeers true; only the status matters.
	lite := mr
	lite.Stream, lite.OmitPeers = false, true
	body, _ = json.Marshal(lite)
	req, _ = http.NewRequest("POST", host+"/machine/map", bytes.NewReader(body))
	resp2, err := cc.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("lite update: %w", err)
	}
	io.Copy(io.Discard, resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != 200 {
		return fmt.Errorf("lite update: status %d", resp2.StatusCode)
	}
	return nil
}
