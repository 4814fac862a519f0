//go:build !race

package authstore

const raceEnabled = false
