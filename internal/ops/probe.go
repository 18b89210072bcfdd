package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ProbeTimeout bounds one Probe when the caller gives no deadline: well
// under the container health check's own timeout (docker-compose.yml), so
// that the probe says why it failed instead of being killed.
const ProbeTimeout = 3 * time.Second

// probeBodyMax is how much of an answer's body a failed probe quotes: the
// ops page's reasons are one short line ("not ready: nats not connected
// (reconnecting)").
const probeBodyMax = 200

// Probe asks an ops page endpoint (http://host:port/readyz or /healthz)
// once and returns nil when it answers 200. It is the container health
// check of the images without a shell or an HTTP client (distroless:
// `authctl probe URL`, docker-compose.yml). Errors: a URL that is not
// plain http with a host; no answer within ctx's deadline (ProbeTimeout if
// ctx has none); any other status, with the first line of the body, which
// /readyz keeps free of URLs and error texts (docs/operations.md).
func Probe(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("probe: %q is not an http://host:port/path URL", rawURL)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ProbeTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", u.Redacted(), err)
	}
	// No proxy from the environment, no keep-alive: one request to a local
	// page, then exit.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("probe %s: no answer in time", u.Redacted())
		}
		return fmt.Errorf("probe %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, probeBodyMax))
	if resp.StatusCode != http.StatusOK {
		line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
		return fmt.Errorf("probe %s: %s: %s", u.Redacted(), resp.Status, line)
	}
	return nil
}
