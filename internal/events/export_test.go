package events

// For the external tests: the two decoders Unmarshal chooses between.
var (
	DecodeFast    = decodeFast
	UnmarshalSlow = unmarshalSlow
)
