package tracing_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"

	"github.com/ameli-auth/authsvc/internal/tracing"
)

// Without any exporter (the default), a requester's traceparent and
// tracestate still flow through the commands service's spans into the
// appended event's headers: the global tracer's non-recording span keeps
// the parent's span context.
func TestReview15TracestateReachesTheEventWithoutTracing(t *testing.T) {
	in := nats.Header{}
	in.Set("traceparent", "00-"+strings.Repeat("ab", 16)+"-"+strings.Repeat("cd", 8)+"-01")
	var members []string
	for i := range 32 {
		members = append(members, "k"+string(rune('a'+i%26))+string(rune('a'+i/26))+"="+strings.Repeat("x", 200))
	}
	in.Set("tracestate", strings.Join(members, ","))
	ctx := tracing.Extract(context.Background(), in)
	ctx, span := otel.GetTracerProvider().Tracer("x").Start(ctx, "process")
	defer span.End()
	out := nats.Header{}
	tracing.Inject(ctx, out)
	if ts := out.Get("tracestate"); ts != "" {
		t.Errorf("event headers get the requester's tracestate (%d bytes) and traceparent %s without tracing on", len(ts), out.Get("traceparent"))
	}
}
