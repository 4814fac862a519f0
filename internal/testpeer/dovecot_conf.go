package testpeer

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/template"
)

// dovecotConf is everything the generated dovecot.conf depends on.
type dovecotConf struct {
	ConfFile   string
	Instance   string
	RunDir     string // base_dir: sockets, kept short for sun_path
	AuthSocket string // SASL listener for Postfix, relative to RunDir
	StateDir   string
	LogFile    string
	CertFile   string
	KeyFile    string
	UsersFile  string
	MasterFile string
	HomeDir    string
	Ports      dovecotPorts
	IDs        dovecotIDs
	Extra      string
}

type dovecotPorts struct {
	IMAP, IMAPS, POP3, POP3S int
}

// dovecotIDs are the accounts Dovecot's processes run as. As root, Dovecot
// insists on unprivileged accounts for login and internal processes and
// refuses to access mail as root; as anyone else, everything runs as that
// one user and nothing may chroot.
type dovecotIDs struct {
	Root          bool
	LoginUser     string
	InternalUser  string
	InternalGroup string
	InternalUID   int
	InternalGID   int
	MailUID       int
	MailGID       int
}

// dovecotTemplate follows Dovecot 2.3's documented settings. Every listener
// is on loopback, and nothing refers to /etc/dovecot or the system base_dir.
var dovecotTemplate = template.Must(template.New("dovecot.conf").Parse(`# One test's private Dovecot; shares nothing with a system instance.
instance_name = {{.Instance}}
base_dir = {{.RunDir}}
state_dir = {{.StateDir}}
log_path = {{.LogFile}}
protocols = imap pop3
listen = 127.0.0.1
shutdown_clients = yes

default_login_user = {{.IDs.LoginUser}}
default_internal_user = {{.IDs.InternalUser}}
default_internal_group = {{.IDs.InternalGroup}}
first_valid_uid = 1
first_valid_gid = 1
mail_uid = {{.IDs.MailUID}}
mail_gid = {{.IDs.MailGID}}
mail_location = maildir:~/Maildir
# IDLE learns of new mail by inotify, falling back to polling when the
# per-user inotify instances (128 by default) run out, as they can with
# many private instances at once; poll every second, not every 30.
mailbox_idle_check_interval = 1s
namespace inbox {
  inbox = yes
  separator = /
}

ssl = yes
ssl_cert = <{{.CertFile}}
ssl_key = <{{.KeyFile}}
ssl_min_protocol = TLSv1.2
# postern may speak plain IMAP/POP3 to a loopback upstream when configured to.
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
# Tests fail logins on purpose; Dovecot's 2 s failure delay and growing
# per-IP penalty (loopback is shared by every test) would only slow them.
auth_failure_delay = 0
# Lets the proxy's ID x-originating-ip and XCLIENT name the real client.
login_trusted_networks = 127.0.0.0/8 ::1

# Master users log in as anyone with SASL PLAIN authzid=user; continuing to
# the next passdb checks that the target user exists.
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {{.MasterFile}}
  master = yes
  result_success = continue
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {{.UsersFile}}
}
userdb {
  driver = static
  args = home={{.HomeDir}}/%u
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = {{.Ports.IMAP}}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = {{.Ports.IMAPS}}
    ssl = yes
  }
{{- if not .IDs.Root}}
  chroot =
{{- end}}
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = {{.Ports.POP3}}
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = {{.Ports.POP3S}}
    ssl = yes
  }
{{- if not .IDs.Root}}
  chroot =
{{- end}}
}
# Postfix's smtpd asks this socket for SASL (smtpd_sasl_type = dovecot).
# It runs as the postfix user, so the socket is open to everyone; it lives
# in this instance's private runtime directory.
service auth {
  unix_listener {{.AuthSocket}} {
    mode = 0666
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
{{- if not .IDs.Root}}
  chroot =
{{- end}}
}
{{- if .IDs.Root}}
# Mail processes run as the mail user, not as the internal user that owns
# this socket by default.
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
{{- end}}
{{.Extra}}
`))

func (c dovecotConf) render() ([]byte, error) {
	var b strings.Builder
	if err := dovecotTemplate.Execute(&b, c); err != nil {
		return nil, fmt.Errorf("render dovecot.conf: %w", err)
	}
	return []byte(b.String()), nil
}

// currentDovecotIDs picks the accounts for this process's privilege: the
// Debian package's dovenull and dovecot users plus nobody for mail when
// root, the current user for everything otherwise.
func currentDovecotIDs() (dovecotIDs, error) {
	if os.Geteuid() != 0 {
		me, err := user.Current()
		if err != nil {
			return dovecotIDs{}, fmt.Errorf("current user: %w", err)
		}
		uid, gid := os.Getuid(), os.Getgid()
		group, err := user.LookupGroupId(strconv.Itoa(gid))
		if err != nil {
			return dovecotIDs{}, fmt.Errorf("current group: %w", err)
		}
		return dovecotIDs{
			LoginUser: me.Username, InternalUser: me.Username, InternalGroup: group.Name,
			InternalUID: uid, InternalGID: gid, MailUID: uid, MailGID: gid,
		}, nil
	}
	ids := dovecotIDs{Root: true, LoginUser: "dovenull", InternalUser: "dovecot", InternalGroup: "dovecot"}
	if _, _, err := lookupIDs(ids.LoginUser, "dovecot-core"); err != nil {
		return dovecotIDs{}, err
	}
	var err error
	if ids.InternalUID, ids.InternalGID, err = lookupIDs(ids.InternalUser, "dovecot-core"); err != nil {
		return dovecotIDs{}, err
	}
	if ids.MailUID, ids.MailGID, err = lookupIDs("nobody", "base-passwd"); err != nil {
		return dovecotIDs{}, err
	}
	return ids, nil
}

// lookupIDs returns the ids of a system account the named package creates.
func lookupIDs(name, pkg string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("system user %q missing (created by the %s package): %w", name, pkg, err)
	}
	if uid, err = strconv.Atoi(u.Uid); err != nil {
		return 0, 0, fmt.Errorf("uid of %q: %w", name, err)
	}
	if gid, err = strconv.Atoi(u.Gid); err != nil {
		return 0, 0, fmt.Errorf("gid of %q: %w", name, err)
	}
	return uid, gid, nil
}
