//go:build ceph_preview

package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"
)

// scaleNodes is how many nodes section 10 provisions at once: a rack
// moved by an operator (the M2 paper's "< 5 minutes to move nodes").
const scaleNodes = 100

// hilCall sends an admin request to the site's HIL (hil-mock).
func (s *site) hilCall(method, path, body string) error {
	req, err := http.NewRequest(method, s.hil+"/v0"+path, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(admin.User, admin.Password.Reveal())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("HIL %s %s: HTTP %d: %s", method, path, resp.StatusCode, raw)
	}
	return nil
}

// apiCall sends a request to bmid's API as alice and returns its status
// and how long it took.
func (s *site) apiCall(client *http.Client, method, path, body string) (int, time.Duration, error) {
	req, err := http.NewRequest(method, s.api+"/api/v1"+path, bytes.NewBufferString(body))
	if err != nil {
		return 0, 0, err
	}
	req.SetBasicAuth(alice.User, alice.Password.Reveal())
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, time.Since(t0), err
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, d, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	return resp.StatusCode, d, nil
}

// benchScale is section 10: scaleNodes nodes provisioned at once through
// bmid's REST API (one client per node, as a script moving a rack would),
// then deprovisioned at once; baseline: as many bare librbd clones of the
// same snapshot at once, in the same run.
func benchScale(b *testing.B, s *site) {
	ctx := context.Background()
	sec, done := section("10-scale", fmt.Sprintf("10. %d provisions at once", scaleNodes),
		fmt.Sprintf("%d nodes of tenant-a (registered in hil-mock for the run) provisioned at once through bmid's REST API (POST .../nodes/{n}/provision, "+
			"one HTTP client per node, auth through hil-mock), then deprovisioned at once; time until all are done, per-request latency, failures; "+
			"baseline: %d bare librbd clones of the same image snapshot at once (go-ceph in-process), in the same run.", scaleNodes, scaleNodes))
	defer done()
	img := "scale"
	s.source(b, img, 10, 64)
	im, err := s.svc.ShowImage(ctx, alice, "tenant-a", img)
	if err != nil {
		b.Fatal(err)
	}
	nodes := make([]string, scaleNodes)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("scale-%03d", i+1)
		for _, c := range [][3]string{
			{"PUT", "/node/" + nodes[i], `{"obm": {"type": "mock", "host": "` + nodes[i] + `", "user": "u", "password": "p"}}`},
			{"PUT", "/node/" + nodes[i] + "/nic/eth0", fmt.Sprintf(`{"macaddr": "52:54:00:fa:%02x:%02x"}`, (i+1)>>8, (i+1)&0xff)},
			{"POST", "/project/tenant-a/connect_node", `{"node": "` + nodes[i] + `"}`},
		} {
			if err := s.hilCall(c[0], c[1], c[2]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Cleanup(func() {
		for _, n := range nodes {
			_ = s.hilCall("POST", "/project/tenant-a/detach_node", `{"node": "`+n+`"}`)
			_ = s.hilCall("DELETE", "/node/"+n+"/nic/eth0", "")
			_ = s.hilCall("DELETE", "/node/"+n, "")
		}
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: scaleNodes}, Timeout: 5 * time.Minute}
	// at once: every client starts when all are ready
	burst := func(do func(i int) (time.Duration, error)) (time.Duration, []time.Duration, int, []string) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		lat := make([]time.Duration, 0, scaleNodes)
		var errs []string
		start := make(chan struct{})
		for i := range scaleNodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				d, err := do(i)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err.Error())
					return
				}
				lat = append(lat, d)
			}()
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		sort.Strings(errs)
		return time.Since(t0), lat, len(errs), errs
	}
	allP, latP, failP, errsP := burst(func(i int) (time.Duration, error) {
		_, d, err := s.apiCall(client, "POST", "/projects/tenant-a/nodes/"+nodes[i]+"/provision", `{"image": "`+img+`", "nic": "eth0"}`)
		return d, err
	})
	allD, latD, failD, errsD := burst(func(i int) (time.Duration, error) {
		_, d, err := s.apiCall(client, "DELETE", "/projects/tenant-a/nodes/"+nodes[i]+"/provision", "")
		return d, err
	})
	allC, latC, failC, errsC := burst(func(i int) (time.Duration, error) {
		t0 := time.Now()
		err := s.store.Clone(ctx, im.CephName, s.cfg.Ceph.Snapshot, fmt.Sprintf("%sscale%d", s.pfx, i))
		return time.Since(t0), err
	})
	for i := range scaleNodes {
		_ = s.store.Remove(ctx, fmt.Sprintf("%sscale%d", s.pfx, i))
	}
	add := func(c, subject string, all time.Duration, lat []time.Duration, fail int) {
		r := Durations(c+": one request", subject, "ms", lat)
		r.Errors = fail
		sec.Add(r)
		a := Durations(c+": all done", subject, "s", []time.Duration{all})
		a.Errors = fail
		sec.Add(a)
	}
	add("provision", "bmi (REST API)", allP, latP, failP)
	add("deprovision", "bmi (REST API)", allD, latD, failD)
	add("clone", "librbd (baseline)", allC, latC, failC)
	sec.Ratio(fmt.Sprintf("%d provisions / %d bare clones, all done", scaleNodes, scaleNodes), allP.Seconds(), allC.Seconds())
	for _, e := range [][]string{errsP, errsD, errsC} {
		if len(e) > 0 {
			sec.Note("first failure (of %d): %s", len(e), e[0])
		}
	}
	sec.Note("the image: 10 GiB sparse, 64 MiB written; each provision is a clone of its protected snapshot, an iSCSI export, a boot config and HIL calls")
}
