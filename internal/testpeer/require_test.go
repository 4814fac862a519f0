package testpeer

import (
	"fmt"
	"strings"
	"testing"
)

// recordingTB notes Skip and Fatal instead of ending the test, so the skip
// rule itself can be tested.
type recordingTB struct {
	testing.TB
	skipped, fatal string
}

func (r *recordingTB) Helper()               {}
func (r *recordingTB) Skip(args ...any)      { r.skipped = fmt.Sprint(args...) }
func (r *recordingTB) Fatal(args ...any)     { r.fatal = fmt.Sprint(args...) }
func (r *recordingTB) Skipf(string, ...any)  { panic("unexpected Skipf") }
func (r *recordingTB) Fatalf(string, ...any) { panic("unexpected Fatalf") }

func TestRequirePeer(t *testing.T) {
	const missing = "postern-no-such-peer"
	tests := []struct {
		name, binary, env string
		wantPath          bool
		wantSkip          bool
		wantFatal         bool
	}{
		{"installed", "sh", "1", true, false, false},
		{"missing skips", missing, "", false, true, false},
		{"missing skips unless required", missing, "0", false, true, false},
		{"missing fails when required", missing, "1", false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(RequirePeersEnv, tt.env)
			r := &recordingTB{TB: t}
			path := RequirePeer(r, tt.binary)
			if (path != "") != tt.wantPath || (r.skipped != "") != tt.wantSkip || (r.fatal != "") != tt.wantFatal {
				t.Fatalf("path %q, skip %q, fatal %q", path, r.skipped, r.fatal)
			}
			if msg := r.skipped + r.fatal; !tt.wantPath && !strings.Contains(msg, missing+" not installed; run scripts/install-peers") {
				t.Fatalf("message %q does not say what to run", msg)
			}
		})
	}
}
