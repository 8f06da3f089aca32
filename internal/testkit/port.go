package testkit

// Ports for tests that must know a port before a server binds it, or bind
// the same port again after a restart.
//
// Probing with 127.0.0.1:0 and closing hands out a port from the kernel's
// ephemeral range, which every outgoing connection on the machine draws
// from too: between the probe and the bind (or between a kill and a
// restart) a client socket may take it. Ports below that range are never
// handed out to clients, so a port picked there stays free unless another
// program binds it by number.

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// low and high bound the range picked from when the kernel's ephemeral
// range cannot be read.
const (
	low  = 20000
	high = 32767
)

// Port returns a loopback TCP port below the kernel's ephemeral range that
// nothing listens on now.
func Port(t testing.TB) int {
	t.Helper()
	hi := ephemeralStart() - 1
	lo := min(low, hi-1000)
	for range 200 {
		p := lo + rand.IntN(hi-lo+1)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		return p
	}
	t.Fatalf("no free port in %d-%d", lo, hi)
	return 0
}

// Addr returns "127.0.0.1:PORT" for a free port.
func Addr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", Port(t))
}

// ephemeralStart is the first port of the kernel's ephemeral range.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return high + 1
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return high + 1
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 2048 {
		return high + 1
	}
	return n
}
