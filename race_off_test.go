//go:build !race

package main

const raceEnabled = false

const noExitSleep = "GORACE=atexit_sleep_ms=0"
