module switchboard.dev/protocol/legacy-vectors

go 1.23.1

require golang.org/x/crypto v0.33.0

require golang.org/x/sys v0.30.0 // indirect
