package main

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// ipAllocator hands out pod IPs 10.N.X.Y. It walks the space with a cursor
// instead of taking the lowest free address, so a freed IP is not handed
// out again until the ~65k others have been (clients that still hold an
// old pod's IP never reach a new pod by accident). .0 and .255 in the last
// octet are skipped: EndpointSlice validation and some clients dislike them.
type ipAllocator struct {
	mu     sync.Mutex
	subnet byte
	next   uint16
	used   map[uint16]bool
}

func newIPAllocator(subnet int) *ipAllocator {
	return &ipAllocator{subnet: byte(subnet), next: 1, used: map[uint16]bool{}}
}

func usableHost(h uint16) bool { return h&0xff != 0 && h&0xff != 255 }

func (a *ipAllocator) addr(h uint16) string {
	return fmt.Sprintf("10.%d.%d.%d", a.subnet, h>>8, h&0xff)
}

func (a *ipAllocator) allocate() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range 1 << 16 {
		h := a.next
		a.next++
		if usableHost(h) && !a.used[h] {
			a.used[h] = true
			return a.addr(h), nil
		}
	}
	return "", errors.New("pod IP range exhausted")
}

// host parses ip as one of ours.
func (a *ipAllocator) host(ip string) (uint16, bool) {
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is4() {
		return 0, false
	}
	b := addr.As4()
	h := uint16(b[2])<<8 | uint16(b[3])
	return h, b[0] == 10 && b[1] == a.subnet && usableHost(h)
}

// reserve claims ip (a pod's IP from a previous run of this kubelet) if it is
// ours and free.
func (a *ipAllocator) reserve(ip string) bool {
	h, ok := a.host(ip)
	if !ok {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.used[h] {
		return false
	}
	a.used[h] = true
	return true
}

func (a *ipAllocator) release(ip string) {
	if h, ok := a.host(ip); ok {
		a.mu.Lock()
		delete(a.used, h)
		a.mu.Unlock()
	}
}
