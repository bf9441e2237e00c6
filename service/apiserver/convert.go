package apiserver

import (
	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/core"
)

func toProject(p core.Project) api.Project {
	return api.Project{ID: p.ID, Name: p.Name, Created: p.Created}
}

func toImage(im core.Image) api.Image {
	return api.Image{ID: im.ID, Project: im.Project, Name: im.Name, Kind: string(im.Kind), Parent: im.Parent,
		CephName: im.CephName, Size: im.Size, Public: im.Public, State: string(im.State), OpID: im.OpID,
		Created: im.Created, Updated: im.Updated}
}

func toTarget(t core.Target) api.Target {
	return api.Target{IQN: t.IQN, CHAPUser: t.CHAPUser, Initiators: t.Initiators, Created: t.Created}
}

func toDisk(d core.DiskInfo) api.Disk {
	out := api.Disk{Image: toImage(d.Image), Nodes: d.Nodes}
	if d.Target != nil {
		t := toTarget(*d.Target)
		out.Target = &t
	}
	return out
}

func toTargetInfo(t core.TargetInfo) api.TargetInfo {
	return api.TargetInfo{Target: toTarget(t.Target), Project: t.Project, Disk: t.Disk, Exported: t.Exported}
}

func toBoot(b core.BootConfig) api.BootConfig {
	return api.BootConfig{Node: b.Node, Project: b.Project, Disk: b.Disk, NIC: b.NIC, MAC: b.MAC, OwnsDisk: b.OwnsDisk, Updated: b.Updated}
}

func toOp(o core.Operation) api.Operation {
	out := api.Operation{ID: o.ID, Kind: o.Kind, Project: o.Project, Target: o.Target, Principal: o.Principal,
		State: string(o.State), Error: o.Error, Progress: o.Progress, Created: o.Created, Updated: o.Updated}
	for _, st := range o.Steps {
		out.Steps = append(out.Steps, api.Step{Seq: st.Seq, Name: st.Name, State: string(st.State), At: st.At})
	}
	return out
}

func toReport(r core.Report) api.Report {
	return api.Report{Recovered: r.Recovered, OrphanImages: list(r.OrphanImages), MissingImages: list(r.MissingImages),
		StrayTargets: list(r.StrayTargets), Reexported: list(r.Reexported), StrayBootFiles: list(r.StrayBootFiles), Left: list(r.Left), Fixed: r.Fixed, Errors: r.Errors}
}

// list makes a nil list empty ([] rather than null in JSON).
func list(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// mapList converts a slice, never returning nil (a list is [] in JSON).
func mapList[T, U any](in []T, f func(T) U) []U {
	out := make([]U, 0, len(in))
	for _, v := range in {
		out = append(out, f(v))
	}
	return out
}
