package steps

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Prefix marks every name the suite gives to what it creates (BMI images,
// snapshots, disks, RBD images): `bmi-uat clean` removes what carries it.
const Prefix = "uat-"

// RandomAlphabet is the original UAT's alphabet for random names (ASCII
// '-', '.', '0-9', ':', 'A-Z', '_', 'a-z') without ':', which BMI's image
// names do not allow. The first character after Prefix is a letter or digit.
const RandomAlphabet = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"

const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Namer turns a scenario's aliases ("golden", "snap") into the real names
// used on the site: Prefix + scenario id + alias, or, when random, Prefix
// followed by random characters, 10-15 characters in all, as in the
// original's randomised rounds.
type Namer struct {
	id     string
	rnd    *rand.Rand
	byName map[string]string
	used   map[string]bool
}

// NewNamer returns a namer for one scenario; rnd nil means readable names.
func NewNamer(id string, rnd *rand.Rand) *Namer {
	return &Namer{id: id, rnd: rnd, byName: map[string]string{}, used: map[string]bool{}}
}

// Name returns the real name of alias, the same one each time.
func (n *Namer) Name(alias string) string {
	if real, ok := n.byName[alias]; ok {
		return real
	}
	var real string
	for real == "" || n.used[real] {
		if n.rnd == nil {
			real = fmt.Sprintf("%s%s-%s", Prefix, n.id, alias)
		} else {
			real = RandomName(n.rnd)
		}
	}
	n.byName[alias], n.used[real] = real, true
	return real
}

// RandomName draws a name of 10-15 characters: Prefix, one letter or
// digit, then characters of RandomAlphabet.
func RandomName(rnd *rand.Rand) string {
	total := 10 + rnd.IntN(6)
	var b strings.Builder
	b.WriteString(Prefix)
	b.WriteByte(alnum[rnd.IntN(len(alnum))])
	for b.Len() < total {
		b.WriteByte(RandomAlphabet[rnd.IntN(len(RandomAlphabet))])
	}
	return b.String()
}

// Bind makes alias name an existing thing of the site (not the suite's).
func (n *Namer) Bind(alias, real string) {
	n.byName[alias], n.used[real] = real, true
}
