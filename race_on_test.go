//go:build race

package main

// raceEnabled makes TestMain build the binary under test with the race
// detector too, when the tests themselves run with -race.
const raceEnabled = true
