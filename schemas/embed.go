// Package schemas holds the JSON Schemas (draft 2020-12) of the wire
// contract: the events of the AUTH_EVENTS stream (events/), the requests of
// each command subject (commands/), the replies (replies/) and
// the fraud events of the AUTH_FRAUD stream (fraud/). Other teams
// read them as files; internal/schemacheck compiles them from FS.
package schemas

import "embed"

// FS holds events/*.json, commands/*.json, replies/*.json and
// fraud/*.json (the messages of AUTH_FRAUD, issue 20).
//
//go:embed events commands replies fraud
var FS embed.FS
