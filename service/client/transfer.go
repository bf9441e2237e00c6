package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/fault"
)

// Upload streams size bytes from r into a new image of project. It
// returns the image and its operation id.
func (c *Client) Upload(ctx context.Context, project, name string, r io.Reader, size int64) (api.Image, string, error) {
	if size <= 0 {
		return api.Image{}, "", fault.Errorf(fault.Invalid, "upload of %q: size must be positive", name)
	}
	req, err := c.request(ctx, http.MethodPut, "/projects/"+seg(project)+"/images/"+seg(name)+"/data", nil, io.NopCloser(r))
	if err != nil {
		return api.Image{}, "", err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := c.send(req)
	if err != nil {
		return api.Image{}, "", err
	}
	defer res.Body.Close()
	var out api.Image
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return out, "", fault.Errorf(fault.Internal, "decoding bmid's answer: %v", err)
	}
	return out, res.Header.Get(api.OperationHeader), nil
}

// Download opens an image, snapshot or disk for reading; it returns the
// stream (close it) and its size. A stream that ends before size bytes
// fails with io.ErrUnexpectedEOF.
func (c *Client) Download(ctx context.Context, project, name string) (io.ReadCloser, int64, error) {
	req, err := c.request(ctx, http.MethodGet, "/projects/"+seg(project)+"/images/"+seg(name)+"/data", nil, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/octet-stream")
	res, err := c.send(req)
	if err != nil {
		return nil, 0, err
	}
	size, err := strconv.ParseInt(res.Header.Get("Content-Length"), 10, 64)
	if err != nil {
		res.Body.Close()
		return nil, 0, fault.Errorf(fault.Internal, "bmid sent %q without its size", name)
	}
	return res.Body, size, nil
}
