package authstore

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
)

// schemaVersion is the layout this build writes. Open upgrades a file of
// an older version in the transaction that records the new one, so a
// store is never half migrated; a newer version is refused (ErrSchema).
const schemaVersion = 3

// migrations[v] upgrades a store at version v to v+1. Each returns what it
// changed, for the log.
var migrations = map[int]func(kvTx) (string, error){
	1: addSMTPScope,
	2: addActiveSyncScope,
}

// checkSchema stamps a new store with schemaVersion, upgrades an older one
// and refuses one it cannot read.
func checkSchema(db kv, log *slog.Logger) error {
	var notes []string
	err := db.Update(func(tx kvTx) error {
		notes = nil // a retried transaction starts over
		v := tx.Get(bMeta, "schema")
		if v == nil {
			return tx.Put(bMeta, "schema", []byte(strconv.Itoa(schemaVersion)))
		}
		from, err := strconv.Atoi(string(v))
		if err != nil || from < 1 || from > schemaVersion {
			return fmt.Errorf("%w %q (this build reads 1 to %d)", ErrSchema, v, schemaVersion)
		}
		for n := from; n < schemaVersion; n++ {
			note, err := migrations[n](tx)
			if err != nil {
				return fmt.Errorf("migrate store from schema %d: %w", n, err)
			}
			notes = append(notes, fmt.Sprintf("schema %d to %d: %s", n, n+1, note))
		}
		return tx.Put(bMeta, "schema", []byte(strconv.Itoa(schemaVersion)))
	})
	for _, n := range notes {
		log.Info("store migrated", "change", n)
	}
	return err
}

// scopesBeforeSMTP is what "everything" meant before the smtp scope
// existed (schema 1).
var scopesBeforeSMTP = []Protocol{IMAP, POP3, CalDAV, CardDAV}

// scopesBeforeActiveSync is what "everything" meant before the activesync
// scope existed (schema 2).
var scopesBeforeActiveSync = []Protocol{IMAP, POP3, SMTP, CalDAV, CardDAV}

// addSMTPScope (schema 1 to 2) lets the app passwords made for everything
// send mail too: "everything" now includes smtp, and a mail app set up
// with one of them reads and sends with it. One a person limited keeps
// exactly its scopes: the limit was a choice, and an IMAP-only archiver
// must not start sending.
func addSMTPScope(tx kvTx) (string, error) {
	n, err := widenEverything(tx, scopesBeforeSMTP, SMTP)
	return fmt.Sprintf("%d app passwords made for everything gained the smtp scope", n), err
}

// addActiveSyncScope (schema 2 to 3) lets the app passwords made for
// everything serve an ActiveSync phone too, as addSMTPScope let them send;
// limited ones keep exactly their scopes.
func addActiveSyncScope(tx kvTx) (string, error) {
	n, err := widenEverything(tx, scopesBeforeActiveSync, ActiveSync)
	return fmt.Sprintf("%d app passwords made for everything gained the activesync scope", n), err
}

// widenEverything adds scope to every app password whose scopes are
// exactly everything (what "everything" meant before scope existed, in any
// order), revoked ones too, and says how many it changed.
func widenEverything(tx kvTx, everything []Protocol, scope Protocol) (int, error) {
	updated := map[string]*appPwRecord{}
	err := tx.Scan(bAppPw, "", func(key string, v []byte) error {
		var rec appPwRecord
		if _, err := getJSONBytes(v, &rec); err != nil {
			return fmt.Errorf("%s/%s: %w", bAppPw, key, err)
		}
		if sameScopes(rec.Scopes, everything) {
			rec.Scopes = append(rec.Scopes, scope)
			updated[key] = &rec
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Written after the scan: a bucket must not change under its cursor.
	for key, rec := range updated {
		if err := putJSON(tx, bAppPw, key, rec); err != nil {
			return 0, err
		}
	}
	return len(updated), nil
}

// sameScopes reports whether a and b hold the same protocols, in any order.
func sameScopes(a, b []Protocol) bool {
	for _, p := range a {
		if !slices.Contains(b, p) {
			return false
		}
	}
	for _, p := range b {
		if !slices.Contains(a, p) {
			return false
		}
	}
	return true
}
