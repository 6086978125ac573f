//go:build race

package main

// raceEnabled makes TestMain build the binary under test with the race
// detector too, when the tests themselves run with -race.
const raceEnabled = true

// noExitSleep keeps a race-enabled relaymail from sleeping a second
// before it exits (GORACE's atexit_sleep_ms defaults to 1000).
const noExitSleep = "GORACE=atexit_sleep_ms=0"
