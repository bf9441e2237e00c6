package events

import (
	"testing"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/fault"
)

func TestBus(t *testing.T) {
	b := &Bus{MaxClients: 2, Buffer: 2}
	all, err := b.Subscribe(nil)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := b.Subscribe(api.EventFilter{Project: "p1"}.Match)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe(nil); fault.Of(err) != fault.Unavailable {
		t.Fatalf("third subscriber: %v, want unavailable", err)
	}
	b.Publish(api.Event{Project: "p1"})
	b.Publish(api.Event{Project: "p2"})
	if ev := <-p1.C; ev.Project != "p1" || ev.Seq != 1 || ev.Time.IsZero() {
		t.Fatalf("p1 got %+v", ev)
	}
	// all has two events buffered, its limit: one more drops it.
	b.Publish(api.Event{Project: "p3"})
	for i := 0; i < 2; i++ {
		<-all.C
	}
	if _, ok := <-all.C; ok || !all.Lagged() {
		t.Fatal("a subscriber that fell behind is still subscribed")
	}
	if b.Clients() != 1 {
		t.Fatalf("clients = %d, want 1", b.Clients())
	}
	p1.Close()
	p1.Close() // twice: no-op
	again, err := b.Subscribe(nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, ok := <-again.C; ok {
		t.Fatal("Close left a subscription open")
	}
	if _, err := b.Subscribe(nil); err == nil {
		t.Fatal("Subscribe after Close succeeded")
	}
	b.Publish(api.Event{}) // after Close: no panic
}
