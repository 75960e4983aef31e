// Command go-interop checks Switchboard's TypeScript protocol library against Tailscale's own Go
// code (tailscale.com v1.80.3): controlhttp/controlbase for the /ts2021 upgrade and Noise, and
// golang.org/x/net/http2 for HTTP/2 over Noise, as tailscaled 1.80 uses them.
//
//	go-interop vectors                   print primitive known-answer vectors (JSON)
//	go-interop transcript                print a deterministic handshake + records transcript (JSON)
//	go-interop messages                  print tailcfg sample messages as Go encodes them (JSON)
//	go-interop client -url ... -flags    act as a Tailscale client against a Switchboard server
//	go-interop server -key ... -flags    act as a Tailscale-style control server for a Switchboard client
//
// It exits non-zero with a message on stderr at the first disagreement.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go-interop vectors|transcript|client|server [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "vectors":
		err = runVectors()
	case "transcript":
		err = runTranscript()
	case "messages":
		err = runMessages()
	case "client":
		err = runClient(os.Args[2:])
	case "server":
		err = runServer(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-interop:", err)
		os.Exit(1)
	}
}
