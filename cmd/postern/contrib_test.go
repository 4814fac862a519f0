package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
	"github.com/postern-dev/postern/proxy/dav"
)

// TestSystemdUnitVerifies: contrib/systemd/postern.service passes
// `systemd-analyze verify` (with ExecStart pointed at a built binary, which
// verify requires to exist) and keeps the hardening the operations guide
// promises.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := testpeer.RequirePeer(t, "systemd-analyze")
	unit, err := os.ReadFile("../../contrib/systemd/postern.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"User=postern", "ProtectSystem=strict", "StateDirectory=postern",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "LimitNOFILE=", "NoNewPrivileges=yes",
		"ExecStart=/usr/local/bin/postern serve -c /etc/postern/postern.toml"} {
		if !strings.Contains(string(unit), want+"") {
			t.Errorf("the unit lacks %q", want)
		}
	}
	bin, err := builtPostern()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "postern.service")
	os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/postern", bin)), 0o644)
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestAlertRulesCheck: contrib/prometheus/postern-alerts.yml passes
// `promtool check rules`, and every postern metric it names is one the
// server exports.
func TestAlertRulesCheck(t *testing.T) {
	rules, err := os.ReadFile("../../contrib/prometheus/postern-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	proxy.NewMetrics(reg)
	dav.NewMetrics(reg)
	newBackupMetrics(reg)
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exported := map[string]bool{}
	ch := make(chan *prometheus.Desc, 64)
	go func() { reg.Describe(ch); close(ch) }()
	for d := range ch {
		if m := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String()); m != nil {
			exported[m[1]] = true
		}
	}
	for _, name := range regexp.MustCompile(`\b(?:postern|process)_[a-z_]+\b`).FindAllString(string(rules), -1) {
		if !exported[name] {
			t.Errorf("the alert rules name %s, which postern does not export", name)
		}
	}
	promtool := testpeer.RequirePeer(t, "promtool")
	if out, err := exec.Command(promtool, "check", "rules", "../../contrib/prometheus/postern-alerts.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}
