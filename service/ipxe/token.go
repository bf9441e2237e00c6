package ipxe

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"sync"
	"time"
)

// TokenTTL is how long a script token stays valid after DHCP issued it.
const TokenTTL = 2 * time.Minute

// maxTokensPerMAC bounds the tokens kept per MAC (DHCP retransmits issue
// one per answer; the newest are kept).
const maxTokensPerMAC = 8

// maxTokens bounds the whole table, so a flood of DHCP requests with
// made-up MACs cannot grow it without end.
const maxTokens = 4096

// Tokens are one-time script tokens: DHCP issues one per answer to iPXE
// and puts it into the script URL; the script handler serves a script
// only with an unused, unexpired token issued for that MAC, and then
// forgets it. The zero value is not usable; use NewTokens.
type Tokens struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string][]issued
	n   int
}

type issued struct {
	tok string
	exp time.Time
}

// NewTokens returns an empty token table; now nil means time.Now.
func NewTokens(now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{now: now, m: map[string][]issued{}}
}

// Issue returns a new token for mac, valid for TokenTTL and once.
func (t *Tokens) Issue(mac net.HardwareAddr) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n >= maxTokens {
		t.sweep(now)
	}
	if t.n >= maxTokens { // still full of live tokens: start again
		t.m, t.n = map[string][]issued{}, 0
	}
	k := mac.String()
	l := t.m[k]
	if len(l) >= maxTokensPerMAC {
		l = l[1:]
		t.n--
	}
	t.m[k] = append(l, issued{tok: tok, exp: now.Add(TokenTTL)})
	t.n++
	return tok
}

// Redeem reports whether tok is an unused, unexpired token of mac, and
// if so uses it up.
func (t *Tokens) Redeem(mac net.HardwareAddr, tok string) bool {
	if len(tok) != 32 {
		return false
	}
	now := t.now()
	k := mac.String()
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.m[k]
	for i, it := range l {
		if subtle.ConstantTimeCompare([]byte(it.tok), []byte(tok)) == 1 {
			t.m[k] = append(l[:i:i], l[i+1:]...)
			t.n--
			if len(t.m[k]) == 0 {
				delete(t.m, k)
			}
			return now.Before(it.exp)
		}
	}
	return false
}

// sweep drops expired tokens; t.mu is held.
func (t *Tokens) sweep(now time.Time) {
	for k, l := range t.m {
		keep := l[:0]
		for _, it := range l {
			if now.Before(it.exp) {
				keep = append(keep, it)
			}
		}
		t.n -= len(l) - len(keep)
		if len(keep) == 0 {
			delete(t.m, k)
		} else {
			t.m[k] = keep
		}
	}
}
