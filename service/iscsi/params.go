package iscsi

import (
	"strconv"
	"strings"
)

// Our side of the operational keys (RFC 7143 §13).
const (
	// ourMaxRecvDataSegment is the MaxRecvDataSegmentLength we declare: the
	// longest data segment an initiator may send us.
	ourMaxRecvDataSegment = 256 * 1024
	// loginMaxData bounds data segments during login (before negotiation).
	loginMaxData         = 8192
	ourMaxBurst          = 16 * 1024 * 1024
	ourFirstBurst        = 256 * 1024
	ourMaxOutstandingR2T = 8
)

// params are the negotiated operational parameters of a session, with the
// RFC's defaults for keys nobody sent.
type params struct {
	headerDigest, dataDigest bool
	// initiatorMaxRecv is the initiator's declared MaxRecvDataSegmentLength:
	// Data-In, R2T-less responses and text answers are split by it.
	initiatorMaxRecv   int
	maxBurst           int
	firstBurst         int
	initialR2T         bool
	immediateData      bool
	maxOutstandingR2T  int
	dataPDUInOrder     bool
	dataSeqInOrder     bool
	errorRecoveryLevel int
	defaultTime2Wait   int
	defaultTime2Retain int
}

// defaultParams are RFC 7143's defaults.
func defaultParams() params {
	return params{
		initiatorMaxRecv:   8192,
		maxBurst:           262144,
		firstBurst:         65536,
		initialR2T:         true,
		immediateData:      true,
		maxOutstandingR2T:  1,
		dataPDUInOrder:     true,
		dataSeqInOrder:     true,
		defaultTime2Wait:   2,
		defaultTime2Retain: 20,
	}
}

// negotiator applies the initiator's operational keys to a params and
// builds our answers.
type negotiator struct {
	p         params
	discovery bool
	declared  bool // our MaxRecvDataSegmentLength was sent
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

func parseYesNo(v string) (bool, bool) {
	switch v {
	case "Yes":
		return true, true
	case "No":
		return false, true
	}
	return false, false
}

// parseNum parses a decimal number within [lo, hi].
func parseNum(v string, lo, hi int) (int, bool) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

// isSpecial reports the values a key can carry instead of a real value.
func isSpecial(v string) bool {
	return v == "Reject" || v == "Irrelevant" || v == "NotUnderstood"
}

// operational handles one operational key. handled is false for keys that
// are not operational (login and security keys are the caller's).
func (n *negotiator) operational(kv keyValue) (answer keyValue, reply, handled bool) {
	k, v := kv.Key, kv.Value
	ans := func(val string) (keyValue, bool, bool) { return keyValue{k, val}, true, true }
	if isSpecial(v) {
		return keyValue{}, false, true // nothing to answer to the initiator's own verdict
	}
	switch k {
	case "HeaderDigest", "DataDigest":
		choice := ""
		for _, o := range strings.Split(v, ",") {
			if o == "CRC32C" || o == "None" {
				choice = o
				break
			}
		}
		if choice == "" {
			return ans("Reject")
		}
		if k == "HeaderDigest" {
			n.p.headerDigest = choice == "CRC32C"
		} else {
			n.p.dataDigest = choice == "CRC32C"
		}
		return ans(choice)
	case "MaxConnections":
		if _, ok := parseNum(v, 1, 65535); !ok {
			return ans("Reject")
		}
		return ans("1")
	case "InitialR2T":
		b, ok := parseYesNo(v)
		if !ok {
			return ans("Reject")
		}
		n.p.initialR2T = b // OR with our "No"
		return ans(yesNo(b))
	case "ImmediateData":
		b, ok := parseYesNo(v)
		if !ok {
			return ans("Reject")
		}
		n.p.immediateData = b // AND with our "Yes"
		return ans(yesNo(b))
	case "DataPDUInOrder", "DataSequenceInOrder":
		b, ok := parseYesNo(v)
		if !ok {
			return ans("Reject")
		}
		// OR: we need in-order data, so our answer is always Yes.
		_ = b
		return ans("Yes")
	case "MaxRecvDataSegmentLength":
		m, ok := parseNum(v, 512, 1<<24-1)
		if !ok {
			return ans("Reject")
		}
		n.p.initiatorMaxRecv = m
		// Declarative: no answer, but we declare our own once.
		if n.declared {
			return keyValue{}, false, true
		}
		n.declared = true
		return keyValue{k, strconv.Itoa(ourMaxRecvDataSegment)}, true, true
	case "MaxBurstLength", "FirstBurstLength":
		m, ok := parseNum(v, 512, 1<<24-1)
		if !ok {
			return ans("Reject")
		}
		if n.discovery {
			return ans("Irrelevant")
		}
		if k == "MaxBurstLength" {
			n.p.maxBurst = min(m, ourMaxBurst)
			return ans(strconv.Itoa(n.p.maxBurst))
		}
		n.p.firstBurst = min(m, ourFirstBurst)
		return ans(strconv.Itoa(n.p.firstBurst))
	case "MaxOutstandingR2T":
		m, ok := parseNum(v, 1, 65535)
		if !ok {
			return ans("Reject")
		}
		n.p.maxOutstandingR2T = min(m, ourMaxOutstandingR2T)
		return ans(strconv.Itoa(n.p.maxOutstandingR2T))
	case "ErrorRecoveryLevel":
		if _, ok := parseNum(v, 0, 2); !ok {
			return ans("Reject")
		}
		n.p.errorRecoveryLevel = 0
		return ans("0")
	case "DefaultTime2Wait":
		m, ok := parseNum(v, 0, 3600)
		if !ok {
			return ans("Reject")
		}
		n.p.defaultTime2Wait = max(m, 2)
		return ans(strconv.Itoa(n.p.defaultTime2Wait))
	case "DefaultTime2Retain":
		if _, ok := parseNum(v, 0, 3600); !ok {
			return ans("Reject")
		}
		n.p.defaultTime2Retain = 0 // ERL 0: nothing is retained
		return ans("0")
	case "IFMarker", "OFMarker": // RFC 3720 keys, obsolete in RFC 7143
		if _, ok := parseYesNo(v); !ok {
			return ans("Reject")
		}
		return ans("No")
	case "IFMarkInt", "OFMarkInt":
		return ans("Irrelevant")
	}
	return keyValue{}, false, false
}

// finish adds the keys we must declare even if the initiator did not
// mention them.
func (n *negotiator) finish() []keyValue {
	if n.declared {
		return nil
	}
	n.declared = true
	return []keyValue{{"MaxRecvDataSegmentLength", strconv.Itoa(ourMaxRecvDataSegment)}}
}
