package bench

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/postern-dev/postern/bench/load"
	"github.com/postern-dev/postern/internal/testpeer"
)

// posternConfig is postern as a site would run it in front of a Dovecot on
// the same host: master-user login over loopback without TLS, ID with the
// client's address, the default log level. Only the connection caps are
// raised, since every benchmark client comes from loopback.
var posternConfig = template.Must(template.New("postern.toml").Parse(`
data_dir = "{{.Dir}}/data"
key_file = "{{.Dir}}/postern.key"

[tls]
certificates = [{ cert_file = "{{.Cert}}", key_file = "{{.Key}}" }]

[imap]
listen_tls = "{{.TLSAddr}}"
listen_starttls = "{{.PlainAddr}}"

[pop3]
listen_tls = ""
listen_stls = ""

[admin]
listen = "{{.AdminAddr}}"
tls = false

[upstream.imap]
address = "{{.Upstream}}"
security = "none"
login = "master"
master_user = "{{.MasterUser}}"
master_password_file = "{{.Dir}}/master.pw"

[limits]
max_connections = 100000
max_connections_per_ip = 100000
`))

// posternSetup is a configured postern with its users, ready to serve.
type posternSetup struct {
	bin, dir, conf     string
	source             string // which code the binary was built from
	tlsAddr, plainAddr string
	adminAddr          string // /metrics
	accounts           []load.Account
}

// setupPostern builds postern, writes its configuration and creates the
// users with one IMAP app password each, through the command line.
func setupPostern(t *testing.T, binDir string, d *testpeer.DovecotPeer, cert certFiles) *posternSetup {
	t.Helper()
	p := &posternSetup{dir: t.TempDir()}
	p.bin, p.source = buildPostern(t, binDir)
	p.conf = filepath.Join(p.dir, "postern.toml")
	p.tlsAddr, p.plainAddr, p.adminAddr = freeAddr(t), freeAddr(t), freeAddr(t)
	if err := os.WriteFile(filepath.Join(p.dir, "master.pw"), []byte(d.MasterPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var conf bytes.Buffer
	err := posternConfig.Execute(&conf, map[string]string{
		"Dir": p.dir, "Cert": cert.cert, "Key": cert.key, "TLSAddr": p.tlsAddr, "PlainAddr": p.plainAddr, "AdminAddr": p.adminAddr,
		"Upstream": d.IMAPAddr, "MasterUser": d.MasterUser,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.conf, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cli(t, "check-config")
	p.cli(t, "init")
	for i := range mailUsers {
		name := userName(i)
		p.cli(t, "user", "add", name, "--no-password")
		secret := p.cli(t, "app-password", "create", name, "--name", "bench", "--scope", "imap")
		p.accounts = append(p.accounts, load.Account{User: name, Password: strings.TrimSpace(secret)})
	}
	return p
}

// revEnv names a git revision to build postern from instead of the
// working tree, whose uncommitted changes may be half done.
const revEnv = "POSTERN_BENCH_REV"

// buildPostern builds postern from the working tree, or from the revision
// in revEnv, and says which.
func buildPostern(t *testing.T, dir string) (bin, source string) {
	t.Helper()
	const pkg = "github.com/postern-dev/postern/cmd/postern"
	rev := os.Getenv(revEnv)
	if rev == "" {
		head := strings.TrimSpace(gitOutput(t, "", "rev-parse", "--short", "HEAD"))
		if gitOutput(t, "", "status", "--porcelain") != "" {
			return buildBinary(t, "", dir, pkg), "working tree at " + head + " with uncommitted changes"
		}
		return buildBinary(t, "", dir, pkg), "commit " + head
	}
	src := t.TempDir()
	archive := exec.Command("git", "archive", rev)
	// git archive refuses to run in a directory it does not track.
	archive.Dir = strings.TrimSpace(gitOutput(t, "", "rev-parse", "--show-toplevel"))
	var stderr bytes.Buffer
	archive.Stderr = &stderr
	extract := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	extract.Stdin = pipe
	if err := extract.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", rev, err, stderr.String())
	}
	if err := extract.Wait(); err != nil {
		t.Fatalf("extract %s: %v", rev, err)
	}
	commit := strings.TrimSpace(gitOutput(t, "", "rev-parse", "--short", rev+"^{commit}"))
	return buildBinary(t, src, dir, pkg), "commit " + commit
}

// gitOutput runs git in dir ("" for the current one).
func gitOutput(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// cli runs one postern command and returns its standard output.
func (p *posternSetup) cli(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(p.bin, append(args, "-c", p.conf)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("postern %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// start runs postern serve and waits until both listeners answer.
func (p *posternSetup) start(t *testing.T) *process {
	t.Helper()
	proc := startProcess(t, p.dir, "postern", p.bin, "serve", "-c", p.conf)
	proc.waitGreeting(t, p.tlsAddr, p.plainAddr)
	return proc
}
