// Package schemas holds the JSON Schemas (draft 2020-12) of the wire
// contract: the events of the AUTH_EVENTS stream (events/), the requests of
// each command subject (commands/) and the replies (replies/). Other teams
// read them as files; internal/schemacheck compiles them from FS.
package schemas

import "embed"

// FS holds events/*.json, commands/*.json and replies/*.json.
//
//go:embed events commands replies
var FS embed.FS
