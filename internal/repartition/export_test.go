package repartition

// SetMirroredHook runs f once the mirrors hold the old streams, before the
// check that they did not move; nil removes it.
func SetMirroredHook(f func()) { testHookMirrored = f }
