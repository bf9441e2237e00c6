package iscsi

import (
	"context"
	"slices"
)

// Discovery across gateways: a SendTargets discovery at any gateway of a
// group lists every target the initiator's credentials open, each at the
// portal of the gateway that exports it, as an initiator that discovers
// at the group's portal (iscsiadm -m discovery, iscsi-ls) expects.

// Directory lists the targets other Targets of a group export.
type Directory interface {
	// Elsewhere returns the targets exported by the other Targets of the
	// group, each with the portal (host:port) that serves it on the
	// network of local (the host:port the discovery came in at).
	Elsewhere(ctx context.Context, local string) ([]Listed, error)
}

// Listed is a target another Target exports.
type Listed struct {
	// Export holds its name, credentials and ACL; Initiators is the
	// whole initiator ACL (empty admits no one, unlike an Export's),
	// and Volume is not used.
	Export Export
	// Portal is the host:port that serves it.
	Portal string
}

// elsewhere is what a discovery session learnt of the targets other
// Targets export (Config.Directory): the exports, by name, with the
// portal each is served at.
type elsewhere struct {
	exports map[string]*export
	portals map[string]string
}

// lookElsewhere asks the Directory, once per discovery session, which
// targets the other Targets export; a failure only narrows the answer to
// this Target's own targets.
func (l *login) lookElsewhere() {
	dir := l.t.cfg.Directory
	if dir == nil {
		return
	}
	ctx := l.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, locateTimeout)
	defer cancel()
	list, err := dir.Elsewhere(ctx, l.local)
	if err != nil {
		l.t.log.Warn("iscsi discovery: other gateways' targets not listed", "initiator", l.initiator, "err", err)
		return
	}
	l.others = elsewhere{exports: map[string]*export{}, portals: map[string]string{}}
	for _, li := range list {
		if !ValidIQN(li.Export.IQN) || li.Portal == "" || l.t.lookup(li.Export.IQN) != nil {
			continue // exported here: listed at this portal
		}
		prefixes, err := checkAccess(li.Export)
		if err != nil {
			l.t.log.Warn("iscsi discovery: another gateway's target not listed", "iqn", li.Export.IQN, "err", err)
			continue
		}
		e := &export{Export: li.Export, prefixes: prefixes}
		acl := slices.Clone(li.Export.Initiators)
		if acl == nil {
			acl = []string{}
		}
		e.acl.Store(&acl)
		l.others.exports[li.Export.IQN] = e
		l.others.portals[li.Export.IQN] = li.Portal
	}
}

// anyCHAP reports whether a target listed elsewhere needs CHAP.
func (o elsewhere) anyCHAP() bool {
	for _, e := range o.exports {
		if e.CHAP != nil {
			return true
		}
	}
	return false
}

// chapExports returns the targets listed elsewhere whose CHAP user is user.
func (o elsewhere) chapExports(user string) []*export {
	var out []*export
	for _, e := range o.exports {
		if e.CHAP != nil && e.CHAP.User == user {
			out = append(out, e)
		}
	}
	return out
}
