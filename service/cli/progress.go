package cli

import (
	"context"
	"io"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
)

// byteBar shows a transfer of total bytes on stderr when it is a
// terminal; it returns nil (no bar) otherwise.
func (a *app) byteBar(ctx context.Context, name string, total int64) (*mpb.Progress, *mpb.Bar) {
	if !a.env.Terminal {
		return nil, nil
	}
	p := mpb.NewWithContext(ctx, mpb.WithOutput(a.env.Stderr), mpb.WithWidth(40), mpb.WithAutoRefresh())
	b := p.AddBar(total,
		mpb.PrependDecorators(decor.Name(name+" "), decor.CountersKibiByte("% .1f / % .1f")),
		mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.AverageSpeed(decor.SizeB1024(0), " % .1f")))
	return p, b
}

// finish ends a bar (aborting it on failure) and waits for its last frame.
func finish(p *mpb.Progress, b *mpb.Bar, err error) {
	if p == nil {
		return
	}
	if err != nil {
		b.Abort(false)
	}
	p.Wait()
}

// longOp runs a long operation. On a terminal it starts the operation
// asynchronously and shows its progress until it ends; elsewhere it waits
// for the answer. start(async) returns the operation id (async) or does
// the whole call.
func (a *app) longOp(ctx context.Context, c *client.Client, what string, start func(async bool) (string, error)) error {
	if !a.env.Terminal {
		_, err := start(false)
		return err
	}
	id, err := start(true)
	if err != nil || id == "" {
		return err
	}
	p := mpb.NewWithContext(ctx, mpb.WithOutput(a.env.Stderr), mpb.WithWidth(40), mpb.WithAutoRefresh())
	b := p.AddBar(1000, mpb.PrependDecorators(decor.Name(what+" ")), mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace), decor.Elapsed(decor.ET_STYLE_GO, decor.WCSyncSpace)))
	_, err = c.WaitOp(ctx, id, 300*time.Millisecond, func(op api.Operation) {
		b.SetCurrent(int64(op.Progress * 1000))
	})
	if err == nil {
		b.SetCurrent(1000)
	}
	finish(p, b, err)
	return err
}

// proxyReader counts an upload on its bar.
func proxyReader(b *mpb.Bar, r io.Reader) io.Reader {
	if b == nil {
		return r
	}
	pr, err := b.ProxyReader(r)
	if err != nil {
		return r
	}
	return pr
}
