package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/api"
)

// TestWaitOpFollowsEvents: WaitOp reads the operation once, then takes its
// end from the event stream (polling every hour would never see it); with
// no stream (an older bmid: 404) it polls.
func TestWaitOpFollowsEvents(t *testing.T) {
	for name, stream := range map[string]bool{"events": true, "polling fallback": false} {
		t.Run(name, func(t *testing.T) {
			var reads atomic.Int32
			mux := http.NewServeMux()
			mux.HandleFunc("GET /api/v1/operations/op1", func(w http.ResponseWriter, _ *http.Request) {
				st := api.OpRunning
				if n := reads.Add(1); !stream && n > 2 {
					st = api.OpDone
				}
				json.NewEncoder(w).Encode(api.Operation{ID: "op1", State: st})
			})
			mux.HandleFunc("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
				if !stream {
					http.NotFound(w, r)
					return
				}
				if r.URL.Query().Get("operation") != "op1" {
					t.Errorf("events filter %q", r.URL.RawQuery)
				}
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, ": open\n\n")
				w.(http.Flusher).Flush()
				b, _ := json.Marshal(api.Event{Seq: 7, Type: api.EventOperation, Operation: &api.Operation{ID: "op1", State: api.OpDone}})
				fmt.Fprintf(w, "id: 7\nevent: operation\ndata: %s\n\n", b)
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			})
			ts := httptest.NewServer(mux)
			defer ts.Close()
			c, err := New(ts.URL, "alice", "pw")
			if err != nil {
				t.Fatal(err)
			}
			interval := time.Hour
			if !stream {
				interval = time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			op, err := c.WaitOp(ctx, "op1", interval, nil)
			if err != nil || op.State != api.OpDone {
				t.Fatalf("WaitOp = %+v, %v", op, err)
			}
			if stream && reads.Load() != 1 {
				t.Fatalf("with the stream the operation was read %d times, want once", reads.Load())
			}
		})
	}
}
