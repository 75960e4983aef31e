package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"go4.org/mem"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// The raw-Noise exchange both sides run when the peer uses the "raw" machine key:
//
//	server -> client: one 64 KiB greeting message
//	client -> server: messages of rawSizes; the server answers each with the bytes XOR 0xA5
//	client -> server: a zero-length message; the server answers "bye" and closes
//
// Each message is a u32 big-endian length followed by the bytes.
var rawSizes = []int{10 * 1024, 64 * 1024, 1, 4077, 4078, 100_000}

const greetingSize = 64 * 1024

func writeMsg(w io.Writer, b []byte) error {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(append(hdr[:], b...)); err != nil {
		return err
	}
	return nil
}

func readMsg(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > 1<<20 {
		return nil, fmt.Errorf("message of %d bytes too big", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

func xorA5(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = c ^ 0xA5
	}
	return out
}

// rawClient runs the client side of the raw exchange.
func rawClient(c io.ReadWriter) error {
	g, err := readMsg(c)
	if err != nil {
		return fmt.Errorf("reading greeting: %w", err)
	}
	if !bytes.Equal(g, pattern(greetingSize, 77)) {
		return errors.New("greeting corrupted")
	}
	for _, n := range rawSizes {
		m := pattern(n, byte(n))
		if err := writeMsg(c, m); err != nil {
			return fmt.Errorf("writing %d-byte message: %w", n, err)
		}
		got, err := readMsg(c)
		if err != nil {
			return fmt.Errorf("reading reply to %d-byte message: %w", n, err)
		}
		if !bytes.Equal(got, xorA5(m)) {
			return fmt.Errorf("reply to %d-byte message corrupted", n)
		}
	}
	if err := writeMsg(c, nil); err != nil {
		return err
	}
	bye, err := readMsg(c)
	if err != nil {
		return fmt.Errorf("reading bye: %w", err)
	}
	if string(bye) != "bye" {
		return fmt.Errorf("got %q, want bye", bye)
	}
	return nil
}

// rawServer runs the server side of the raw exchange.
func rawServer(c net.Conn) error {
	if err := writeMsg(c, pattern(greetingSize, 77)); err != nil {
		return err
	}
	for {
		m, err := readMsg(c)
		if err != nil {
			return err
		}
		if len(m) == 0 {
			return writeMsg(c, []byte("bye"))
		}
		if err := writeMsg(c, xorA5(m)); err != nil {
			return err
		}
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// The map stream both test servers send on POST /machine/map: a keep-alive, a full map with
// mapPeers peers, a patch, and a final keep-alive; then the body ends.
const mapPeers = 300

func rawKeyBytes(tag byte, i int) []byte {
	b := make([]byte, 32)
	b[0] = tag
	binary.BigEndian.PutUint32(b[28:], uint32(i))
	return b
}

// checkMapStream verifies a decoded map stream against what the test servers send.
func checkMapStream(msgs []*tailcfg.MapResponse, nodeKey string) error {
	if len(msgs) != 4 {
		return fmt.Errorf("got %d map frames, want 4", len(msgs))
	}
	if !msgs[0].KeepAlive || !msgs[3].KeepAlive {
		return errors.New("frames 1 and 4 must be keep-alives")
	}
	full := msgs[1]
	if full.Node == nil {
		return errors.New("full map lacks Node")
	}
	if got := full.Node.Key.String(); got != nodeKey {
		return fmt.Errorf("self node key %s, want %s", got, nodeKey)
	}
	if !full.Node.MachineAuthorized || full.Node.HomeDERP != 900 || full.Node.LegacyDERPString != "127.3.3.40:900" {
		return fmt.Errorf("self node fields wrong: %+v", full.Node)
	}
	if len(full.Peers) != mapPeers {
		return fmt.Errorf("got %d peers, want %d", len(full.Peers), mapPeers)
	}
	for i, p := range full.Peers {
		if int(p.ID) != i+2 {
			return fmt.Errorf("peer %d has ID %d", i, p.ID)
		}
		if want := "nodekey:" + hex.EncodeToString(rawKeyBytes('n', i+2)); p.Key.String() != want {
			return fmt.Errorf("peer %d key %s, want %s", i, p.Key.String(), want)
		}
		if want := "discokey:" + hex.EncodeToString(rawKeyBytes('d', i+2)); p.DiscoKey.String() != want {
			return fmt.Errorf("peer %d disco key %s, want %s", i, p.DiscoKey.String(), want)
		}
		if len(p.Addresses) != 2 || len(p.AllowedIPs) != 2 || p.Cap != 113 {
			return fmt.Errorf("peer %d addresses/cap wrong", i)
		}
	}
	r := full.DERPMap.Regions[900]
	if r == nil || len(r.Nodes) != 1 || r.Nodes[0].HostName != "127.0.0.1" || !full.DERPMap.OmitDefaultRegions {
		return errors.New("DERPMap wrong")
	}
	if len(full.PacketFilter) != 1 || full.PacketFilter[0].SrcIPs[0] != "*" {
		return errors.New("PacketFilter wrong")
	}
	if full.DNSConfig == nil || !full.DNSConfig.Proxied || full.Domain != "example.ts.net" {
		return errors.New("DNSConfig/Domain wrong")
	}
	if full.SSHPolicy == nil || full.ControlTime == nil || len(full.UserProfiles) != 1 {
		return errors.New("SSHPolicy/ControlTime/UserProfiles wrong")
	}
	patch := msgs[2]
	if len(patch.PeersChangedPatch) != 1 || patch.PeersChangedPatch[0].NodeID != 2 ||
		patch.PeersChangedPatch[0].Online == nil || !*patch.PeersChangedPatch[0].Online ||
		len(patch.PeersChangedPatch[0].Endpoints) != 1 || !patch.OnlineChange[3] {
		return errors.New("patch frame wrong")
	}
	return nil
}

func memB(b []byte) mem.RO { return mem.B(b) }

func nodePub(tag byte, i int) key.NodePublic {
	return key.NodePublicFromRaw32(mem.B(rawKeyBytes(tag, i)))
}

// buildMapFrames builds, with Go's tailcfg types, the same stream the TypeScript test server sends.
func buildMapFrames(req *tailcfg.MapRequest, machine key.MachinePublic) []*tailcfg.MapResponse {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	self := &tailcfg.Node{
		ID:                1,
		StableID:          "n1",
		Name:              "self.example.ts.net.",
		User:              1,
		Key:               req.NodeKey,
		Machine:           machine,
		DiscoKey:          req.DiscoKey,
		Addresses:         []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32"), netip.MustParsePrefix("fd7a:115c:a1e0::1/128")},
		AllowedIPs:        []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32"), netip.MustParsePrefix("fd7a:115c:a1e0::1/128")},
		HomeDERP:          900,
		LegacyDERPString:  "127.3.3.40:900",
		MachineAuthorized: true,
		Cap:               req.Version,
		Created:           now,
	}
	peers := make([]*tailcfg.Node, mapPeers)
	for i := range peers {
		id := i + 2
		v4 := netip.AddrFrom4([4]byte{100, 64, byte(id >> 8), byte(id)})
		v6 := netip.MustParseAddr(fmt.Sprintf("fd7a:115c:a1e0::%x", id))
		online := id%2 == 0
		peers[i] = &tailcfg.Node{
			ID:               tailcfg.NodeID(id),
			StableID:         tailcfg.StableNodeID(fmt.Sprintf("n%d", id)),
			Name:             fmt.Sprintf("peer-%d.example.ts.net.", id),
			User:             1,
			Key:              nodePub('n', id),
			DiscoKey:         key.DiscoPublicFromRaw32(mem.B(rawKeyBytes('d', id))),
			Addresses:        []netip.Prefix{netip.PrefixFrom(v4, 32), netip.PrefixFrom(v6, 128)},
			AllowedIPs:       []netip.Prefix{netip.PrefixFrom(v4, 32), netip.PrefixFrom(v6, 128)},
			Endpoints:        []netip.AddrPort{netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(id)}), 41641)},
			HomeDERP:         900,
			LegacyDERPString: "127.3.3.40:900",
			Cap:              113,
			Online:           &online,
			Created:          now,
		}
	}
	online := true
	return []*tailcfg.MapResponse{
		{KeepAlive: true},
		{
			Node: self,
			DERPMap: &tailcfg.DERPMap{
				Regions: map[int]*tailcfg.DERPRegion{900: {
					RegionID: 900, RegionCode: "local", RegionName: "Local",
					Nodes: []*tailcfg.DERPNode{{Name: "900a", RegionID: 900, HostName: "127.0.0.1", IPv4: "127.0.0.1", IPv6: "none", STUNPort: -1, DERPPort: 3340}},
				}},
				OmitDefaultRegions: true,
			},
			Peers:        peers,
			DNSConfig:    &tailcfg.DNSConfig{Proxied: true, Domains: []string{"example.ts.net"}},
			Domain:       "example.ts.net",
			PacketFilter: []tailcfg.FilterRule{{SrcIPs: []string{"*"}, DstPorts: []tailcfg.NetPortRange{{IP: "*", Ports: tailcfg.PortRange{First: 0, Last: 65535}}}}},
			UserProfiles: []tailcfg.UserProfile{{ID: 1, LoginName: "alice@example.com", DisplayName: "Alice"}},
			SSHPolicy:    &tailcfg.SSHPolicy{Rules: []*tailcfg.SSHRule{}},
			ControlTime:  &now,
		},
		{
			PeersChangedPatch: []*tailcfg.PeerChange{{
				NodeID: 2, Online: &online, DERPRegion: 900,
				Endpoints: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.7:41641")},
			}},
			OnlineChange: map[tailcfg.NodeID]bool{3: true},
		},
		{KeepAlive: true},
	}
}
