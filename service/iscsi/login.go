package iscsi

import (
	"bytes"
	"context"
	"fmt"
	"strings"
)

// Login status classes and details (RFC 7143 §11.13.5).
const (
	loginOK                 = 0x0000
	loginMovedTemp          = 0x0101
	loginInitiatorError     = 0x0200
	loginAuthFailed         = 0x0201
	loginForbidden          = 0x0202
	loginNotFound           = 0x0203
	loginTargetRemoved      = 0x0204
	loginUnsupportedVer     = 0x0205
	loginMissingParam       = 0x0207
	loginNoSession          = 0x020a
	loginInvalidDuringLogin = 0x020b
	loginTargetError        = 0x0300
	loginServiceUnavailable = 0x0301
)

// Login stages.
const (
	stageSecurity    = 0
	stageOperational = 1
	stageFullFeature = 3
)

// loginError ends a login with a status.
type loginError struct {
	status uint16
	msg    string
	// address is the TargetAddress of a redirect (status class 1).
	address string
}

func (e *loginError) Error() string {
	return fmt.Sprintf("login refused (0x%04x): %s", e.status, e.msg)
}

func refuse(status uint16, format string, args ...any) *loginError {
	return &loginError{status: status, msg: fmt.Sprintf(format, args...)}
}

// login is the state of one connection's login phase.
type login struct {
	t      *Target
	ctx    context.Context // the connection's: bounds asking the Locator
	remote string          // initiator's address (no port)
	local  string          // the address (host:port) the initiator connected to
	// chapUser is the CHAP user name the initiator gave (for the guard).
	chapUser string

	started     bool
	isid        [6]byte
	initiator   string
	alias       string
	discovery   bool
	exp         *export
	needAuth    bool
	authDone    bool
	chapState   int // 0 idle, 1 CHAP chosen, 2 challenge sent
	chapID      byte
	chapChal    []byte
	discoveryOK map[string]bool // discovery via CHAP: the targets whose credentials matched
	others      elsewhere       // discovery: the targets other gateways export (Config.Directory)
	neg         negotiator
	pending     []byte // text of PDUs sent with the C bit
	statSN      uint32
	done        bool
	tpgtSent    bool
	redirected  bool   // the login ended with a redirect
	redirectTo  string // to this portal
}

// respond handles one Login Request and returns the Login Response. When
// the response ends the login (success or refusal), l.done is set; err is
// non-nil for a refusal (the response then carries the status).
func (l *login) respond(req *pdu) (*pdu, error) {
	resp := newPDU(opLoginResp)
	copy(resp.bhs[8:14], req.bhs[8:14]) // ISID
	copy(resp.bhs[16:20], req.bhs[16:20])
	cmdSN := req.u32(24)
	resp.put32(24, l.statSN)
	resp.put32(28, cmdSN)
	resp.put32(32, cmdSN)
	csg := (req.flags() >> 2) & 3
	transit := req.flags()&0x80 != 0
	nsg := req.flags() & 3
	resp.bhs[1] = csg << 2

	fail := func(e *loginError) (*pdu, error) {
		resp.bhs[1] = csg << 2
		resp.bhs[36], resp.bhs[37] = byte(e.status>>8), byte(e.status)
		resp.data = nil
		if e.address != "" {
			// Portal group tag 1, the one this target announces.
			resp.data = marshalText([]keyValue{{"TargetAddress", e.address + ",1"}})
		}
		l.done = true
		return resp, e
	}
	if req.opcode() != opLoginReq {
		return fail(refuse(loginInvalidDuringLogin, "opcode 0x%02x during login", req.opcode()))
	}
	if req.bhs[3] > 0 { // Version-min
		return fail(refuse(loginUnsupportedVer, "version %d", req.bhs[3]))
	}
	if req.flags()&0x40 != 0 { // C: more text follows
		if transit {
			return fail(refuse(loginInitiatorError, "both T and C set"))
		}
		l.pending = append(l.pending, req.data...)
		if len(l.pending) > maxTextLen {
			return fail(refuse(loginInitiatorError, "login text too long"))
		}
		return resp, nil
	}
	text := append(l.pending, req.data...)
	l.pending = nil
	kvs, err := parseText(text)
	if err != nil {
		return fail(refuse(loginInitiatorError, "%v", err))
	}
	if !l.started {
		if e := l.first(req, kvs); e != nil {
			return fail(e)
		}
	} else if !bytes.Equal(req.bhs[8:14], l.isid[:]) {
		return fail(refuse(loginInitiatorError, "ISID changed during login"))
	}

	var answers []keyValue
	switch csg {
	case stageSecurity:
		a, e := l.security(kvs)
		if e != nil {
			return fail(e)
		}
		answers = a
	case stageOperational:
		if l.needAuth && !l.authDone {
			return fail(refuse(loginAuthFailed, "operational stage before authentication"))
		}
		l.authDone = true
		a, e := l.operational(kvs)
		if e != nil {
			return fail(e)
		}
		answers = a
	default:
		return fail(refuse(loginInvalidDuringLogin, "current stage %d", csg))
	}
	if !l.discovery && !l.tpgtSent {
		l.tpgtSent = true
		answers = append([]keyValue{{"TargetPortalGroupTag", "1"}}, answers...)
	}
	if csg == stageSecurity && l.chapState >= 1 && !l.authDone {
		transit = false // the CHAP exchange is not finished
	}
	if transit {
		if nsg != stageOperational && nsg != stageFullFeature || nsg <= csg {
			return fail(refuse(loginInitiatorError, "bad next stage %d", nsg))
		}
		if csg == stageSecurity && !l.authDone {
			return fail(refuse(loginAuthFailed, "no authentication method agreed"))
		}
		resp.bhs[1] = 0x80 | csg<<2 | nsg
		if nsg == stageFullFeature {
			answers = append(answers, l.neg.finish()...)
			l.done = true
		}
	}
	resp.data = marshalText(answers)
	return resp, nil
}

// first handles the keys of the first Login Request: who logs in to what.
func (l *login) first(req *pdu, kvs []keyValue) *loginError {
	l.started = true
	copy(l.isid[:], req.bhs[8:14])
	if req.u16(14) != 0 {
		return refuse(loginNoSession, "adding a connection to a session is not supported")
	}
	get := func(k string) (string, bool) {
		for _, kv := range kvs {
			if kv.Key == k {
				return kv.Value, true
			}
		}
		return "", false
	}
	name, ok := get("InitiatorName")
	if !ok || name == "" {
		return refuse(loginMissingParam, "no InitiatorName")
	}
	l.initiator = name
	if g := l.t.cfg.Guard; g != nil && !g.Allow(l.remote, name) {
		return refuse(loginThrottled, "too many failed logins from %s or as %s: throttled", l.remote, name)
	}
	l.alias, _ = get("InitiatorAlias")
	st, _ := get("SessionType")
	switch st {
	case "", "Normal":
	case "Discovery":
		l.discovery = true
	default:
		return refuse(loginInitiatorError, "unknown SessionType %q", st)
	}
	l.neg = negotiator{p: defaultParams(), discovery: l.discovery}
	if l.discovery {
		l.needAuth = l.t.requireCHAP()
		l.lookElsewhere()
		return nil
	}
	tn, ok := get("TargetName")
	if !ok || tn == "" {
		return refuse(loginMissingParam, "no TargetName")
	}
	exp := l.t.lookup(tn)
	if exp == nil {
		return l.elsewhere(tn)
	}
	if !exp.allows(l.initiator, l.remote) {
		return refuse(loginForbidden, "initiator %s at %s may not log in to %s", l.initiator, l.remote, tn)
	}
	l.exp = exp
	l.needAuth = l.t.chapOf(exp) != nil || l.t.requireCHAP()
	return nil
}

// security handles the keys of the security stage.
func (l *login) security(kvs []keyValue) ([]keyValue, *loginError) {
	var answers []keyValue
	vals := map[string]string{}
	for _, kv := range kvs {
		switch kv.Key {
		case "InitiatorName", "TargetName", "SessionType", "InitiatorAlias":
		case "AuthMethod":
			choice, e := l.chooseAuth(strings.Split(kv.Value, ","))
			if e != nil {
				return nil, e
			}
			answers = append(answers, keyValue{"AuthMethod", choice})
		case "CHAP_A", "CHAP_N", "CHAP_R", "CHAP_I", "CHAP_C":
			vals[kv.Key] = kv.Value
		default:
			if a, reply, ok := l.neg.operational(kv); ok {
				if reply {
					answers = append(answers, a)
				}
			} else {
				answers = append(answers, keyValue{kv.Key, "NotUnderstood"})
			}
		}
	}
	if v, ok := vals["CHAP_A"]; ok {
		if l.chapState != 1 {
			return nil, refuse(loginInitiatorError, "CHAP_A out of order")
		}
		if !contains(strings.Split(v, ","), "5") {
			return nil, refuse(loginAuthFailed, "CHAP algorithm %q not supported (MD5 only)", v)
		}
		id, chal, err := newChallenge()
		if err != nil {
			return nil, refuse(loginTargetError, "no randomness: %v", err)
		}
		l.chapID, l.chapChal, l.chapState = id, chal, 2
		answers = append(answers, keyValue{"CHAP_A", "5"}, keyValue{"CHAP_I", fmt.Sprint(id)},
			keyValue{"CHAP_C", encodeHex(chal)})
	}
	if _, ok := vals["CHAP_R"]; ok || vals["CHAP_N"] != "" {
		if l.chapState != 2 {
			return nil, refuse(loginInitiatorError, "CHAP response out of order")
		}
		a, e := l.verifyCHAP(vals)
		if e != nil {
			return nil, e
		}
		answers = append(answers, a...)
		l.chapState = 3
		l.authDone = true
	}
	return answers, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// chooseAuth picks the authentication method for this login.
func (l *login) chooseAuth(offer []string) (string, *loginError) {
	if l.chapState != 0 || l.authDone {
		return "", refuse(loginInitiatorError, "AuthMethod negotiated twice")
	}
	useCHAP := l.needAuth
	if l.discovery && !useCHAP && contains(offer, "CHAP") && (l.t.anyCHAP() || l.others.anyCHAP()) {
		useCHAP = true // discovery with credentials lists the CHAP targets they open
	}
	if useCHAP {
		if !contains(offer, "CHAP") {
			return "", refuse(loginAuthFailed, "CHAP required, initiator %s offered %v", l.initiator, offer)
		}
		l.chapState = 1
		return "CHAP", nil
	}
	if !contains(offer, "None") {
		return "", refuse(loginAuthFailed, "no common authentication method in %v", offer)
	}
	l.authDone = true
	return "None", nil
}

// verifyCHAP checks CHAP_N/CHAP_R and answers a mutual challenge.
func (l *login) verifyCHAP(vals map[string]string) ([]keyValue, *loginError) {
	user := vals["CHAP_N"]
	l.chapUser = user
	resp, err := decodeBinary(vals["CHAP_R"])
	if err != nil || user == "" {
		return nil, refuse(loginAuthFailed, "malformed CHAP response from %s", l.initiator)
	}
	var mutual *CHAP
	if l.discovery {
		l.discoveryOK = map[string]bool{}
		for _, e := range append(l.t.chapExports(user), l.others.chapExports(user)...) {
			if c := l.t.chapOf(e); c != nil && chapVerify(l.chapID, c.Secret, l.chapChal, resp) && e.allows(l.initiator, l.remote) {
				l.discoveryOK[e.IQN] = true
				if mutual == nil {
					mutual = e.MutualCHAP
				}
			}
		}
		if len(l.discoveryOK) == 0 {
			return nil, refuse(loginAuthFailed, "CHAP failed for %s (user %q)", l.initiator, user)
		}
	} else {
		c := l.t.chapOf(l.exp)
		if c == nil || user != c.User || !chapVerify(l.chapID, c.Secret, l.chapChal, resp) {
			return nil, refuse(loginAuthFailed, "CHAP failed for %s on %s (user %q)", l.initiator, l.exp.IQN, user)
		}
		mutual = l.exp.MutualCHAP
	}
	l.chapChal = nil // a challenge is used once
	ci, hasI := vals["CHAP_I"]
	cc, hasC := vals["CHAP_C"]
	if !hasI && !hasC {
		return nil, nil
	}
	if !hasI || !hasC || mutual == nil {
		return nil, refuse(loginAuthFailed, "mutual CHAP requested by %s but not configured", l.initiator)
	}
	id, err := parseCHAPID(ci)
	if err != nil {
		return nil, refuse(loginAuthFailed, "%v", err)
	}
	chal, err := decodeBinary(cc)
	if err != nil || len(chal) == 0 || len(chal) > 1024 {
		return nil, refuse(loginAuthFailed, "malformed CHAP_C")
	}
	return []keyValue{{"CHAP_N", mutual.User}, {"CHAP_R", encodeHex(chapResponse(id, mutual.Secret, chal))}}, nil
}

// operational handles the keys of the operational stage.
func (l *login) operational(kvs []keyValue) ([]keyValue, *loginError) {
	var answers []keyValue
	for _, kv := range kvs {
		switch kv.Key {
		case "InitiatorName", "TargetName", "SessionType", "InitiatorAlias":
		case "AuthMethod", "CHAP_A", "CHAP_N", "CHAP_R", "CHAP_I", "CHAP_C":
			return nil, refuse(loginInitiatorError, "security key %s in the operational stage", kv.Key)
		default:
			if a, reply, ok := l.neg.operational(kv); ok {
				if reply {
					answers = append(answers, a)
				}
			} else {
				answers = append(answers, keyValue{kv.Key, "NotUnderstood"})
			}
		}
	}
	return answers, nil
}
