package testpeer

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// sogoMasterSeparator joins a user and Dovecot's master user in the IMAP
// login SOGo sends ("alice*master"), with the master's password.
const sogoMasterSeparator = "*"

// SOGoOptions choose what a private SOGo serves. Zero values pick
// defaults.
type SOGoOptions struct {
	// Users maps user name to password, in Dovecot and in SOGo's user
	// table; nil means alice and bob with random passwords.
	Users map[string]string
	// Settings are extra sogod defaults, as property-list entries
	// ("SOGoMaximumPingInterval = 60;"), which override the peer's own.
	Settings []string
}

// SOGoPeer is a running private SOGo (sogod with its ActiveSync bundle)
// on loopback, with its own PostgreSQL for its tables, its own memcached,
// and its own Dovecot for mail. It trusts the proxy header
// x-webobjects-remote-user from anyone (SOGoTrustProxyAuthentication),
// as it does behind postern, and logs in to Dovecot as the user through
// the master user: each user's imap_login is "user*master", and the
// password is the one in the Basic credential beside the header.
type SOGoPeer struct {
	URL           string // http://127.0.0.1:PORT
	ActiveSyncURL string // the ActiveSync endpoint, URL/SOGo/Microsoft-Server-ActiveSync
	DAVURL        string // the DAV root, URL/SOGo/dav/
	LogFile       string
	Users         map[string]string
	// MasterPassword is the password SOGo must be given (in Basic, beside
	// the header) to reach a user's mail: Dovecot's master user's.
	MasterPassword string
	Dovecot        *DovecotPeer
	Postgres       *PostgresPeer

	dir        string
	dbPassword string
	cred       *syscall.Credential // nil: run as this process's user
}

// SOGo starts a private SOGo for t and stops it when t ends. It skips t
// when sogod, memcached, Dovecot or PostgreSQL is missing, unless
// POSTERN_REQUIRE_PEERS=1 makes that a failure.
func SOGo(t testing.TB, opts SOGoOptions) *SOGoPeer {
	t.Helper()
	sogod, memcached := RequirePeer(t, "sogod"), RequirePeer(t, "memcached")
	if _, err := os.Stat("/usr/lib/GNUstep/SOGo/ActiveSync.SOGo"); err != nil {
		requireOrSkip(t, "SOGo's ActiveSync bundle not installed (sogo-activesync); run scripts/install-peers")
	}
	s, err := newSOGoPeer(t, opts)
	if err != nil {
		t.Fatalf("prepare sogo: %v", err)
	}
	mcAddr, err := s.startMemcached(t, memcached)
	if err != nil {
		t.Fatalf("start memcached: %v", err)
	}
	if err := s.prepareDatabase(); err != nil {
		t.Fatalf("sogo database: %v", err)
	}
	if err := s.run(t, sogod, mcAddr, opts.Settings); err != nil {
		t.Fatalf("start sogo: %v", err)
	}
	for name := range s.Users {
		s.SeedMailbox(t, name, "INBOX")
	}
	return s
}

// newSOGoPeer starts the Dovecot and the PostgreSQL and makes sogod's
// directory, owned by the user sogod runs as.
func newSOGoPeer(t testing.TB, opts SOGoOptions) (*SOGoPeer, error) {
	users := opts.Users
	if users == nil {
		users = map[string]string{"alice": rand.Text(), "bob": rand.Text()}
	}
	s := &SOGoPeer{Users: users}
	s.Dovecot = Dovecot(t, DovecotOptions{Users: users,
		ExtraConfig: "auth_master_user_separator = " + sogoMasterSeparator})
	s.MasterPassword = s.Dovecot.MasterPassword
	s.Postgres = Postgres(t, PostgresOptions{})
	if os.Geteuid() == 0 {
		// sogod refuses to run as root.
		uid, gid, err := lookupIDs("sogo", "sogo")
		if err != nil {
			return nil, err
		}
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "postern-sogo-")
	if err != nil {
		return nil, fmt.Errorf("sogo dir: %w", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s.dir, s.LogFile = dir, filepath.Join(dir, "sogo.log")
	return s, s.own(dir)
}

// own gives path to the user sogod runs as.
func (s *SOGoPeer) own(path string) error { return chownTo(path, s.cred) }

// command runs a program as the user sogod runs as, in a process group of
// its own: sogod's workers are ended with it.
func (s *SOGoPeer) command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = peerGroupProcAttr()
	cmd.SysProcAttr.Credential = s.cred
	cmd.Dir = s.dir
	return cmd
}

// startMemcached runs a private memcached, SOGo's cache, on a free port.
func (s *SOGoPeer) startMemcached(t testing.TB, bin string) (string, error) {
	var addr string
	err := onFreePorts(func() (string, error) {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		var out LockedBuffer
		cmd := s.command(bin, "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "16")
		cmd.Stdout, cmd.Stderr = &out, &out
		exited, err := startPeerProcess(t, cmd)
		if err != nil {
			return "", err
		}
		if err := waitListening("memcached", addr, exited); err != nil {
			return out.String(), err
		}
		return "", nil
	})
	return addr, err
}

// startPeerProcess starts cmd, which leads its own process group, and ends
// it and its children with SIGKILL when t ends: nothing of it needs to
// outlive a test, and sogod answers SIGTERM only after ~30 s. exited is
// closed once cmd is gone.
func startPeerProcess(t testing.TB, cmd *exec.Cmd) (exited <-chan struct{}, err error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec %s: %w", filepath.Base(cmd.Path), err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = killTree(cmd)
		select {
		case <-done:
		case <-time.After(peerStopTimeout):
			t.Errorf("%s (pid %d) outlived SIGKILL for %v", filepath.Base(cmd.Path), cmd.Process.Pid, peerStopTimeout)
		}
	})
	return done, nil
}

// waitListening polls until addr accepts a connection.
func waitListening(name, addr string, exited <-chan struct{}) error {
	return waitGreeting(name, exited, func(deadline time.Time) error {
		c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
		if err == nil {
			c.Close()
		}
		return err
	})
}

// sogoTable is SOGo's user source: the columns its SQL source reads, and
// imap_login, the login it sends to IMAP instead of c_uid.
const sogoTable = "sogo_users"

// prepareDatabase makes the role and database sogod keeps its tables in,
// and the user table it reads accounts from.
func (s *SOGoPeer) prepareDatabase() error {
	s.dbPassword = rand.Text()
	if err := s.Postgres.CreateRole("sogo", s.dbPassword); err != nil {
		return err
	}
	if _, err := s.Postgres.CreateDatabase("sogo", "sogo", s.dbPassword); err != nil {
		return err
	}
	stmts := []string{fmt.Sprintf("CREATE TABLE %s (c_uid varchar(128) PRIMARY KEY, c_name varchar(128) NOT NULL, "+
		"c_password varchar(256) NOT NULL, c_cn varchar(256), mail varchar(256), imap_login varchar(256))", sogoTable),
		fmt.Sprintf("ALTER TABLE %s OWNER TO sogo", sogoTable)}
	for name, password := range s.Users {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO %s VALUES (%s, %s, %s, %s, %s, %s)", sogoTable,
			pgLiteral(name), pgLiteral(name), pgLiteral(password), pgLiteral(name), pgLiteral(name+"@example.org"),
			pgLiteral(name+sogoMasterSeparator+s.Dovecot.MasterUser)))
	}
	_, err := s.Postgres.Exec("sogo", strings.Join(stmts, ";\n"))
	return err
}

// sogoDBURL is a table in sogod's database, in SOGo's URL form.
func (s *SOGoPeer) sogoDBURL(table string) string {
	u := url.URL{Scheme: "postgresql", User: url.UserPassword("sogo", s.dbPassword), Host: s.Postgres.Addr, Path: "/sogo/" + table}
	return u.String()
}

// run writes sogod's defaults and starts it on a free port. sogod reads
// its defaults from the user's GNUstep directory; GNUSTEP_CONFIG_FILE
// points it at a copy of the system's GNUstep.conf that names this
// peer's directory instead.
func (s *SOGoPeer) run(t testing.TB, bin, memcached string, extra []string) error {
	gnustep, err := s.writeGNUstepConf()
	if err != nil {
		return err
	}
	return onFreePorts(func() (string, error) {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "http://" + addr
		s.ActiveSyncURL, s.DAVURL = s.URL+"/SOGo/Microsoft-Server-ActiveSync", s.URL+"/SOGo/dav/"
		if err := s.writeDefaults(addr, memcached, extra); err != nil {
			return "", err
		}
		var out LockedBuffer
		cmd := s.command(bin)
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Env = append(os.Environ(), "GNUSTEP_CONFIG_FILE="+gnustep, "HOME="+s.dir)
		exited, err := startPeerProcess(t, cmd)
		if err != nil {
			return "", err
		}
		if err := s.waitReady(exited); err != nil {
			_ = killTree(cmd)
			return out.String() + s.logTail(), err
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("sogo %s:\n%s%s", s.URL, out.String(), s.logTail())
			}
		})
		return "", nil
	})
}

// writeGNUstepConf copies the system's GNUstep.conf with the user
// defaults directory set to this peer's.
func (s *SOGoPeer) writeGNUstepConf() (string, error) {
	sys, err := os.ReadFile("/etc/GNUstep/GNUstep.conf")
	if err != nil {
		return "", fmt.Errorf("GNUstep.conf: %w", err)
	}
	defaults := filepath.Join(s.dir, "defaults")
	if err := os.Mkdir(defaults, 0o700); err != nil {
		return "", err
	}
	if err := s.own(defaults); err != nil {
		return "", err
	}
	conf := regexp.MustCompile(`(?m)^GNUSTEP_USER_DEFAULTS_DIR=.*$`).ReplaceAllLiteral(sys, nil)
	conf = append(conf, []byte("\nGNUSTEP_USER_DEFAULTS_DIR="+defaults+"\n")...)
	path := filepath.Join(s.dir, "GNUstep.conf")
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// writeDefaults writes sogod.plist. The ping and sync limits are what
// phones are allowed (MS-ASCMD: a heartbeat or wait of up to 59 minutes);
// SOGo looks for changes every SOGoInternalSyncInterval seconds, at least
// every 5.
func (s *SOGoPeer) writeDefaults(addr, memcached string, extra []string) error {
	q := strconv.Quote
	lines := []string{
		"WOPort = " + q(addr), "WOWorkersCount = 4", "WONoDetach = YES",
		"WOLogFile = " + q(s.LogFile), "WOPidFile = " + q(filepath.Join(s.dir, "sogo.pid")),
		"SOGoProfileURL = " + q(s.sogoDBURL("sogo_user_profile")),
		"OCSFolderInfoURL = " + q(s.sogoDBURL("sogo_folder_info")),
		"OCSSessionsFolderURL = " + q(s.sogoDBURL("sogo_sessions_folder")),
		"OCSEMailAlarmsFolderURL = " + q(s.sogoDBURL("sogo_alarms_folder")),
		"SOGoUserSources = ({ type = sql; id = users; viewURL = " + q(s.sogoDBURL(sogoTable)) +
			"; canAuthenticate = YES; isAddressBook = NO; userPasswordAlgorithm = plain; IMAPLoginFieldName = imap_login; })",
		"SOGoIMAPServer = " + q("imap://"+s.Dovecot.IMAPAddr),
		"SOGoSieveScriptsEnabled = NO", "SOGoVacationEnabled = NO", "SOGoForwardEnabled = NO",
		"SOGoMailDomain = example.org", "SOGoTimeZone = UTC", "SOGoLanguage = English",
		"SOGoAppointmentSendEMailNotifications = NO", "SOGoEnableEMailAlarms = NO",
		"SOGoMemcachedHost = " + q(memcached),
		"SOGoTrustProxyAuthentication = YES",
		"SOGoMaximumPingInterval = 3540", "SOGoMaximumSyncInterval = 3540", "SOGoInternalSyncInterval = 5",
	}
	var b strings.Builder
	b.WriteString("{\n")
	for _, l := range append(lines, extra...) {
		b.WriteString("  " + strings.TrimSuffix(l, ";") + ";\n")
	}
	b.WriteString("}\n")
	path := filepath.Join(s.dir, "defaults", "sogod.plist")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return s.own(path)
}

// waitReady polls until sogod answers HTTP. It binds its port before its
// workers exist, so the answer, not the connection, says it is up.
func (s *SOGoPeer) waitReady(exited <-chan struct{}) error {
	client := &http.Client{Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return waitGreeting("sogod", exited, func(time.Time) error {
		resp, err := client.Get(s.URL + "/SOGo/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			return fmt.Errorf("sogod answers %s", resp.Status)
		}
		return nil
	})
}

// logTail is the end of sogod's log, for a failed test.
func (s *SOGoPeer) logTail() string { return fileTail(s.LogFile) }

// Log returns sogod's log so far.
func (s *SOGoPeer) Log(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(s.LogFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read sogo log: %v", err)
	}
	return string(data)
}

// SeedMailbox gives user's mailbox a HIGHESTMODSEQ: SOGo's ActiveSync
// reads changes by modification sequence (CONDSTORE), and syncs nothing
// from a mailbox that has none yet. Dovecot starts counting once a
// client enabled CONDSTORE and selected the mailbox.
func (s *SOGoPeer) SeedMailbox(t testing.TB, user, mailbox string) {
	t.Helper()
	if _, ok := s.Users[user]; !ok {
		t.Fatalf("no sogo user %q", user)
	}
	c, err := imapclient.DialInsecure(s.Dovecot.IMAPAddr, nil)
	if err != nil {
		t.Fatalf("seed %s/%s: %v", user, mailbox, err)
	}
	defer c.Close()
	if err := c.Login(user, s.Users[user]).Wait(); err != nil {
		t.Fatalf("seed %s/%s: login: %v", user, mailbox, err)
	}
	if !strings.EqualFold(mailbox, "INBOX") {
		if err := c.Create(mailbox, nil).Wait(); err != nil && !strings.Contains(err.Error(), "exists") {
			t.Fatalf("seed %s/%s: create: %v", user, mailbox, err)
		}
	}
	// SELECT with the CONDSTORE parameter enables it (RFC 7162 section 3.1).
	if _, err := c.Select(mailbox, &imap.SelectOptions{CondStore: true}).Wait(); err != nil {
		t.Fatalf("seed %s/%s: select: %v", user, mailbox, err)
	}
	_ = c.Logout().Wait()
}
