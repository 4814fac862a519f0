package authstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// replay re-applies to a restored store what the replaced store's audit
// log took away after the backup. The log says what happened and to whom;
// the replaced store's records supply the values a change left behind (a
// new password hash, the factor state after a reset and re-enrollment).
type replay struct {
	s   *Store // the restored store
	ctx context.Context
	rep *RestoreReport
	// events are the replaced store's events after the backup's last one.
	events    []Event
	oldUsers  map[string]*userRecord
	oldPolicy Policy
	changes   []Change // what apply changed
	lost      []Change // what was created after the backup
}

// newReplay reads what it needs from the replaced store, and sets
// rep.Old to say whether there is anything to re-apply from.
func (s *Store) newReplay(ctx context.Context, old kv, oldErr error, rep *RestoreReport) (*replay, error) {
	r := &replay{s: s, ctx: ctx, rep: rep}
	switch {
	case old == nil && oldErr == nil:
		rep.Old = OldNone
		return r, nil
	case old == nil:
		rep.Old, rep.OldError = OldUnread, oldErr.Error()
		return r, nil
	}
	found, err := r.load(old)
	switch {
	case err != nil:
		rep.Old, rep.OldError = OldUnread, err.Error()
	case !found:
		rep.Old, rep.OldError = OldUnrelated, "its audit log does not hold the backup's last event (another store, or pruned past it)"
	default:
		rep.Old = OldReplayed
	}
	return r, nil
}

// related reports whether the replaced store's log continues the backup's.
func (r *replay) related() bool { return r.rep.Old == OldReplayed || r.rep.Old == OldSkipped }

// load reads the replaced store's events after the backup's last one, its
// users and its policy. found is false when its log does not hold the
// backup's last event.
func (r *replay) load(old kv) (found bool, err error) {
	b := r.rep.Backup
	err = old.View(func(tx kvTx) error {
		var last Event
		if ok, err := getJSON(tx, bAudit, auditKey(b.Seq), &last); err != nil || !ok || last.Hash != b.Head {
			return err
		}
		found = true
		if err := tx.Scan(bAudit, "", func(k string, v []byte) error {
			if k <= auditKey(b.Seq) {
				return nil
			}
			var ev Event
			if _, err := getJSONBytes(v, &ev); err != nil {
				return err
			}
			r.events = append(r.events, ev)
			return nil
		}); err != nil {
			return err
		}
		r.oldUsers = map[string]*userRecord{}
		if err := tx.Scan(bUsers, "", func(k string, v []byte) error {
			var rec userRecord
			if _, err := getJSONBytes(v, &rec); err != nil {
				return err
			}
			r.oldUsers[k] = &rec
			return nil
		}); err != nil {
			return err
		}
		_, err := getJSON(tx, bPolicy, "mfa", &r.oldPolicy)
		return err
	})
	return found, err
}

// carry appends the replaced store's later events to the restored log
// under their own numbers: the backup's chain is a prefix of the replaced
// store's, so the chain stays whole.
func (r *replay) carry(tx kvTx) error {
	if !r.related() || len(r.events) == 0 {
		return nil
	}
	for _, ev := range r.events {
		if err := putJSON(tx, bAudit, auditKey(ev.Seq), ev); err != nil {
			return err
		}
	}
	last := r.events[len(r.events)-1]
	if err := tx.Put(bMeta, auditHeadKey, []byte(last.Hash)); err != nil {
		return err
	}
	r.rep.Carried = len(r.events)
	return tx.SetSequence(bAudit, last.Seq)
}

// reapplier takes one event's change away again in the restored store
// and says what it did ("" when there was nothing to do).
type reapplier func(r *replay, tx kvTx, ev Event) (string, error)

var reappliers = map[string]reapplier{
	"apppw.revoke":     (*replay).revokeAppPassword,
	"user.password":    (*replay).password,
	"user.disable":     (*replay).account,
	"user.enable":      (*replay).account,
	"user.update":      (*replay).account,
	"user.role":        (*replay).account,
	"user.delete":      (*replay).deleteUser,
	"mfa.reset":        (*replay).factors,
	"mfa.disable":      (*replay).factors,
	"mfa.enable":       (*replay).factors,
	"mfa.backup_codes": (*replay).factors,
	"token.revoke":     (*replay).revokeToken,
	"policy.mfa":       (*replay).policy,
}

// created are the kinds whose result a restore loses, reported so that the
// operator can tell the users concerned.
var created = map[string]string{
	"user.create":  "account created after the backup",
	"apppw.create": "app password created after the backup",
	"token.create": "API token created after the backup",
}

// apply re-applies every event in order, then keeps every code used since
// the backup used (a code's use is audited after it is recorded, and a
// full audit queue may drop the event; the records never lie).
func (r *replay) apply(tx kvTx) error {
	r.changes, r.lost = nil, nil
	for _, ev := range r.events {
		if what, ok := created[ev.Kind]; ok {
			r.lost = append(r.lost, Change{Time: ev.Time, Kind: ev.Kind, User: ev.User, What: strings.TrimSpace(what + " " + ev.Detail)})
			continue
		}
		fn := reappliers[ev.Kind]
		if fn == nil {
			continue
		}
		what, err := fn(r, tx, ev)
		if err != nil {
			return fmt.Errorf("re-apply event %d (%s): %w", ev.Seq, ev.Kind, err)
		}
		if what != "" {
			r.changes = append(r.changes, Change{Time: ev.Time, Kind: ev.Kind, User: ev.User, What: what})
		}
	}
	return r.usedCodes(tx)
}

// user is the restored store's record of name, nil when it has none.
func (r *replay) user(tx kvTx, name string) (*userRecord, error) {
	if tx.Get(bUsers, name) == nil {
		return nil, nil
	}
	return r.s.getUser(tx, name)
}

// same is the replaced store's record of the same account (same id), nil
// when it was deleted (or deleted and made anew) since.
func (r *replay) same(rec *userRecord) *userRecord {
	if o := r.oldUsers[rec.Name]; o != nil && o.ID == rec.ID {
		return o
	}
	return nil
}

func (r *replay) revokeAppPassword(tx kvTx, ev Event) (string, error) {
	rec, err := r.user(tx, ev.User)
	if rec == nil || err != nil {
		return "", err
	}
	var ap appPwRecord
	if ok, err := getJSON(tx, bAppPw, appPwKey(rec.ID, ev.Detail), &ap); err != nil || !ok || !ap.Revoked.IsZero() {
		return "", err
	}
	if err := r.s.revokeTx(tx, rec.ID, ev.Detail, false); err != nil {
		return "", err
	}
	return fmt.Sprintf("app password %q (%s) revoked", ap.Name, ap.ID), nil
}

func (r *replay) password(tx kvTx, ev Event) (string, error) {
	rec, err := r.user(tx, ev.User)
	if rec == nil || err != nil {
		return "", err
	}
	var what []string
	if o := r.same(rec); o != nil && o.PasswordHash != rec.PasswordHash { // secret-compare: ok (two stored hashes, offline during a restore)
		rec.PasswordHash = o.PasswordHash
		what = append(what, "account password changed")
	}
	if strings.Contains(ev.Detail, "revoke_app_passwords=true") {
		n, err := r.s.liveAppPasswordCount(tx, rec.ID)
		if err != nil {
			return "", err
		}
		if err := r.s.revokeAllTx(tx, rec.ID); err != nil {
			return "", err
		}
		if n > 0 {
			what = append(what, fmt.Sprintf("%d app passwords revoked with it", n))
		}
	}
	return strings.Join(what, "; "), putJSON(tx, bUsers, rec.Name, rec)
}

// account takes over whether the account is disabled and its role as the
// replaced store has them now: what a disable, enable or role change
// left behind.
func (r *replay) account(tx kvTx, ev Event) (string, error) {
	rec, err := r.user(tx, ev.User)
	if rec == nil || err != nil {
		return "", err
	}
	o := r.same(rec)
	if o == nil || (o.Disabled == rec.Disabled && o.Role == rec.Role) {
		return "", nil
	}
	var what []string
	if o.Disabled != rec.Disabled {
		what = append(what, map[bool]string{true: "account disabled", false: "account enabled"}[o.Disabled])
	}
	if o.Role != rec.Role {
		what = append(what, "role "+string(o.Role))
	}
	rec.Disabled, rec.Role = o.Disabled, o.Role
	return strings.Join(what, "; "), putJSON(tx, bUsers, rec.Name, rec)
}

func (r *replay) deleteUser(tx kvTx, ev Event) (string, error) {
	rec, err := r.user(tx, ev.User)
	if rec == nil || err != nil || r.same(rec) != nil {
		return "", err
	}
	if err := r.s.deleteAppPasswordsTx(tx, rec.ID); err != nil {
		return "", err
	}
	if err := r.s.deleteUserTokensTx(r.ctx, tx, rec.Name); err != nil {
		return "", err
	}
	return "account deleted", tx.Delete(bUsers, rec.Name)
}

// factors takes over the replaced store's two-step state of the account:
// after a reset or a disable it is cleared, after an enrollment or new
// backup codes it is the newer one the user now holds. An account gone
// from the replaced store loses its factor on a reset or disable.
func (r *replay) factors(tx kvTx, ev Event) (string, error) {
	rec, err := r.user(tx, ev.User)
	if rec == nil || err != nil {
		return "", err
	}
	before, _ := json.Marshal([]any{rec.TOTP.Enabled, rec.TOTP.Sealed, rec.TOTP.Pending, rec.Backup, rec.AdminCode})
	if o := r.same(rec); o != nil {
		rec.TOTP, rec.Backup, rec.AdminCode = o.TOTP, o.Backup, o.AdminCode
	} else if ev.Kind == "mfa.reset" || ev.Kind == "mfa.disable" {
		clearFactors(rec)
	}
	after, _ := json.Marshal([]any{rec.TOTP.Enabled, rec.TOTP.Sealed, rec.TOTP.Pending, rec.Backup, rec.AdminCode})
	if bytes.Equal(before, after) { // secret-compare: ok (stored records, offline during a restore)
		return "", nil
	}
	words := map[string]string{"mfa.reset": "two-step verification reset", "mfa.disable": "two-step verification turned off",
		"mfa.enable": "two-step verification turned on", "mfa.backup_codes": "backup codes replaced by a newer set"}
	return words[ev.Kind], putJSON(tx, bUsers, rec.Name, rec)
}

// usedCodes marks used, in every account both stores hold, each backup
// code of the same set the replaced store has used, and drops an
// administrator-issued code the replaced store no longer holds.
func (r *replay) usedCodes(tx kvTx) error {
	var recs []*userRecord
	if err := tx.Scan(bUsers, "", func(_ string, v []byte) error {
		var rec userRecord
		if _, err := getJSONBytes(v, &rec); err != nil {
			return err
		}
		recs = append(recs, &rec)
		return nil
	}); err != nil {
		return err
	}
	for _, rec := range recs {
		o := r.same(rec)
		if o == nil {
			continue
		}
		if what := mergeCodes(rec, o); what != "" {
			r.changes = append(r.changes, Change{Kind: "second_factor", User: rec.Name, What: what})
			if err := putJSON(tx, bUsers, rec.Name, rec); err != nil {
				return err
			}
		}
	}
	return nil
}

func mergeCodes(rec, o *userRecord) string {
	var what []string
	if b, ob := rec.Backup, o.Backup; b != nil && ob != nil && bytes.Equal(b.Salt, ob.Salt) && len(b.Used) == len(ob.Used) { // secret-compare: ok (stored salts, offline during a restore)
		n := 0
		for i := range b.Used {
			if ob.Used[i] && !b.Used[i] {
				b.Used[i] = true
				n++
			}
		}
		if n > 0 {
			what = append(what, fmt.Sprintf("%d backup codes used since the backup stay used", n))
		}
	}
	if a := rec.AdminCode; a != nil && (o.AdminCode == nil || !bytes.Equal(a.Salt, o.AdminCode.Salt)) { // secret-compare: ok (stored salts, offline during a restore)
		rec.AdminCode = nil
		what = append(what, "the administrator-issued code, used or replaced since, is void")
	}
	return strings.Join(what, "; ")
}

func (r *replay) revokeToken(tx kvTx, ev Event) (string, error) {
	id, _, _ := strings.Cut(ev.Detail, " ")
	id = strings.TrimPrefix(id, "id=")
	d := tx.Get(bTokens, "i/"+id)
	if d == nil {
		return "", nil
	}
	digest := string(d)
	if err := tx.Delete(bTokens, "d/"+digest); err != nil {
		return "", err
	}
	return fmt.Sprintf("API token %s revoked", id), tx.Delete(bTokens, "i/"+id)
}

func (r *replay) policy(tx kvTx, ev Event) (string, error) {
	var cur Policy
	if _, err := getJSON(tx, bPolicy, "mfa", &cur); err != nil {
		return "", err
	}
	if cur.MFARequired == r.oldPolicy.MFARequired && cur.GraceUntil.Equal(r.oldPolicy.GraceUntil) {
		return "", nil
	}
	return fmt.Sprintf("organisation policy: two-step verification required=%t", r.oldPolicy.MFARequired),
		putJSON(tx, bPolicy, "mfa", r.oldPolicy)
}

// liveAppPasswordCount counts a user's app passwords not yet revoked.
func (s *Store) liveAppPasswordCount(tx kvTx, userID string) (int, error) {
	n := 0
	err := tx.Scan(bAppPw, userID+"/", func(_ string, v []byte) error {
		var rec appPwRecord
		if _, err := getJSONBytes(v, &rec); err != nil {
			return err
		}
		if rec.Revoked.IsZero() {
			n++
		}
		return nil
	})
	return n, err
}
