package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/bmi-go/bmi/lab/cephlab"
	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/service/fault"
)

// GatewayAPIPort is where the host reaches gateway i's own API (through
// the lab's API proxy): GatewayAPIPort + i on the lab end of the host
// link. APIPort reaches whichever gateway is ready.
const GatewayAPIPort = 8090

// GatewayAPIURL is gateway i's own API as the host reaches it.
func (l *Lab) GatewayAPIURL(i int) string {
	return fmt.Sprintf("http://%s:%d", l.LabAddr, GatewayAPIPort+i)
}

// gatewayConfigData adds gateway gw's keys to the bmid.yaml data.
func (l *Lab) gatewayConfigData(data map[string]any, gw int) {
	data["Gateway"] = GatewayID(gw)
	data["GatewayAPI"] = GatewayAPI(gw)
	data["DSN"] = l.PostgresDSN()
	data["Group"] = GatewayGroup
	data["Lease"] = GatewayLease.String()
	data["Addresses"] = l.GatewayPortals(gw)
}

// upGateways starts what a several-gateway lab runs beside hil-mock and
// Ceph, each unless it runs: PostgreSQL, the API proxy, and the gateways
// one after the other (the first creates the key and the schema), each
// with its keepalived; it returns once every gateway is ready.
func (l *Lab) upGateways(ctx context.Context, o UpOptions, ceph *cephlab.Cluster) error {
	svc := l.loadServices()
	var err error
	if svc.Postgres, err = l.startPostgres(ctx, svc.Postgres); err != nil {
		return err
	}
	if err := l.saveServices(svc); err != nil {
		return err
	}
	if !svc.APIProxy.Alive() {
		argv := []string{"ip", "netns", "exec", l.Namespace, o.BmiLab, "api-proxy"}
		var all []string
		for i := 1; i <= l.Gateways; i++ {
			all = append(all, GatewayAPI(i))
			argv = append(argv, "--route", fmt.Sprintf("%s:%d=%s", l.LabAddr, GatewayAPIPort+i, GatewayAPI(i)))
		}
		argv = append(argv, "--route", fmt.Sprintf("%s:%d=%s", l.LabAddr, APIPort, strings.Join(all, ",")))
		if svc.APIProxy, err = proc.StartDaemon(argv, nil, filepath.Join(l.Dir, "api-proxy.log")); err != nil {
			return err
		}
		if err := l.saveServices(svc); err != nil {
			return err
		}
	}
	byID := map[string]Gateway{}
	for _, g := range svc.Gateways {
		byID[g.ID] = g
	}
	var gws []Gateway
	for i := 1; i <= l.Gateways; i++ {
		g, ok := byID[GatewayID(i)]
		if !ok || !g.Bmid.Alive() {
			if ok {
				_ = g.Keepalived.Stop(ctx, 0)
			}
			if err := l.writeBmidConfig(ctx, l.gatewayConfPath(i), ceph, i); err != nil {
				return err
			}
			if g, err = l.startGateway(ctx, i, o.Bmid, svc.BootFaults); err != nil {
				return err
			}
		}
		gws = append(gws, g)
		svc.Gateways, svc.BmidBinary = gws, o.Bmid
		if err := l.saveServices(svc); err != nil {
			return err
		}
		if err := waitHTTP(ctx, l.GatewayAPIURL(i)+"/readyz", g.Bmid, l.gatewayLog(i)); err != nil {
			return fmt.Errorf("lab %q: gateway %d: %w", l.Name, i, err)
		}
	}
	return nil
}

// StartGateway starts gateway id again (its bmid and keepalived) after it
// was killed or stopped, with the binary it last ran (a rolling upgrade's
// new one) and the lab's boot faults (bmi-lab bmid faults), and returns
// once it is ready. It has no disks at first: a gateway taken over comes back
// empty, and new disks are placed on it until the counts even out.
func (l *Lab) StartGateway(ctx context.Context, id string) error {
	svc := l.loadServices()
	for k, g := range svc.Gateways {
		if g.ID != id {
			continue
		}
		if g.Bmid.Alive() {
			return fmt.Errorf("lab %q: gateway %s runs (pid %d): %w", l.Name, id, g.Bmid.Pid, fault.ErrConflict)
		}
		if err := g.Keepalived.Stop(ctx, 5*time.Second); err != nil {
			return err
		}
		ceph, err := l.Ceph()
		if err != nil {
			return err
		}
		i := k + 1
		if err := l.writeBmidConfig(ctx, l.gatewayConfPath(i), ceph, i); err != nil {
			return err
		}
		binary := g.Binary
		if binary == "" {
			binary = svc.BmidBinary
		}
		if svc.Gateways[k], err = l.startGateway(ctx, i, binary, svc.BootFaults); err != nil {
			return err
		}
		if err := l.saveServices(svc); err != nil {
			return err
		}
		return waitHTTP(ctx, l.GatewayAPIURL(i)+"/readyz", svc.Gateways[k].Bmid, l.gatewayLog(i))
	}
	return fmt.Errorf("lab %q has no gateway %q: %w", l.Name, id, fault.ErrNotFound)
}
