package web_test

import (
	"net/http"
	"strings"
	"testing"
)

// The page span's name and its http.request.method attribute are the
// request's method as the client sent it: any token, as long as the
// server's header limit (64 KiB in production) allows. With tracing on,
// each such request puts two copies of it in the batch queue (2048 spans)
// and in the trace backend (a span name per method: cardinality).
// OTel's HTTP semantic conventions: an unknown method is "_OTHER".
func TestReview15SpanNameFromClientMethod(t *testing.T) {
	f := newTracedFrontEnd(t, true)
	method := "X" + strings.Repeat("A", 32<<10)
	f.do(t, method, "/anything", nil, http.Header{})
	for _, s := range f.spans.GetSpans() {
		if len(s.Name) > 1000 {
			t.Errorf("span name of %d bytes from the client's method", len(s.Name))
		}
		for _, a := range s.Attributes {
			if len(a.Value.Emit()) > 1000 {
				t.Errorf("attribute %s of %d bytes from the client's method", a.Key, len(a.Value.Emit()))
			}
		}
	}
}
