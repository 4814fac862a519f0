package testpeer

import (
	"fmt"
	"strings"
	"text/template"
)

// postfixConf is everything the generated main.cf and master.cf depend on.
type postfixConf struct {
	Dir        string // config_directory: main.cf, master.cf, maps
	QueueDir   string
	DataDir    string
	LogFile    string
	MailBase   string // virtual_mailbox_base; mail lands in catchall/
	SendersMap string
	CertFile   string
	KeyFile    string
	AuthSocket string // Dovecot's SASL listener
	Port       int
	TLSPort    int
	MailUID    int
	MailGID    int
	Extra      string
}

// postfixMain follows Postfix 3.7's documented settings. Everything lives
// under Dir: no syslog, no chroot, nothing from /etc/postfix but the
// read-only defaults. smtpd_sasl_auth_enable matters beyond AUTH: without
// it Postfix logs an XCLIENT LOGIN but neither relays for it nor checks
// the sender against it.
var postfixMain = template.Must(template.New("main.cf").Parse(`# One test's private Postfix; shares nothing with a system instance.
compatibility_level = 3.6
queue_directory = {{.QueueDir}}
data_directory = {{.DataDir}}
maillog_file = {{.LogFile}}
maillog_file_prefixes = {{.Dir}}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mail.example.test
mydomain = example.test
myorigin = example.test
mydestination =
relay_domains =
local_recipient_maps =
biff = no
# The client's port tells its connection apart from another on loopback.
smtpd_client_port_logging = yes

smtpd_tls_security_level = may
smtpd_tls_cert_file = {{.CertFile}}
smtpd_tls_key_file = {{.KeyFile}}

smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {{.AuthSocket}}
# Received then says "(Authenticated sender: alice)", so a test sees who
# Postfix thought sent a message.
smtpd_sasl_authenticated_header = yes
smtpd_authorized_xclient_hosts = 127.0.0.1
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_sender_login_maps = regexp:{{.SendersMap}}
smtpd_sender_restrictions = reject_sender_login_mismatch

# Every recipient goes to one catch-all maildir, so a test reads what
# arrived, and from whom, in one place.
transport_maps = static:virtual
virtual_mailbox_base = {{.MailBase}}
virtual_mailbox_maps = static:catchall/
virtual_uid_maps = static:{{.MailUID}}
virtual_gid_maps = static:{{.MailGID}}
virtual_minimum_uid = 1
{{.Extra}}
`))

// postfixMaster lists the services a submission and a virtual delivery
// need, and the discard agent for benchmarks that keep nothing
// (transport_maps = static:discard). The smtpds listen on loopback high
// ports; chroot is off everywhere, since the instance's files are not
// inside the queue.
var postfixMaster = template.Must(template.New("master.cf").Parse(`127.0.0.1:{{.Port}} inet n - n - - smtpd
127.0.0.1:{{.TLSPort}} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
flush     unix  n - n 1000? 0 flush
error     unix  - - n -     - error
retry     unix  - - n -     - error
virtual   unix  - n n -     - virtual
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
discard   unix  - - n -     - discard
`))

// postfixSenders owns each address by its local part: alice may send as
// alice@anything, and as nobody else (smtpd_sender_login_maps).
const postfixSenders = "/^([^@]+)@/ ${1}\n"

func (c postfixConf) render(tmpl *template.Template) ([]byte, error) {
	var b strings.Builder
	if err := tmpl.Execute(&b, c); err != nil {
		return nil, fmt.Errorf("render %s: %w", tmpl.Name(), err)
	}
	return []byte(b.String()), nil
}
